// Job DSL: the tests job. A push to the model test suite runs it against the current model
// (production:current, else testing:latest) and records the result, with the suite's commit, on that
// version. Two layouts:
//   MLOPS_TESTS_REPO set (its own repository, as the original system keeps it): the job runs the code
//     repository's Jenkinsfile; the webhook's TESTS_REPO and TESTS_REVISION become
//     `mlops test-model REF --suite git+REPO@REVISION`, the pushed suite checked out read-only.
//   otherwise: the suite is unit_testing/ of the code repository; a push touching only it runs the job.
String codeRepo = System.getenv('MLOPS_CODE_REPO') ?: 'https://github.com/example/mlops-xray.git'
String codeBranch = System.getenv('MLOPS_CODE_BRANCH') ?: 'main'
String testsRepo = System.getenv('MLOPS_TESTS_REPO') ?: ''
String testsBranch = System.getenv('MLOPS_TESTS_BRANCH') ?: 'main'
boolean ownRepo = testsRepo && testsRepo != codeRepo

pipelineJob('mlops/tests') {
    description(ownRepo ?
        "Push to ${testsRepo}: run the pushed model tests on the current model and record the result." :
        'Push to unit_testing/: run the new model tests on the current model and record the result.')
    logRotator {
        numToKeep(50)
    }
    parameters {
        choiceParam('PIPELINE', ['auto', 'tests', 'code', 'data', 'deploy'], 'auto: this job runs the tests pipeline')
        stringParam('DATA_URI', '', 'unused by the tests pipeline')
        stringParam('SUITE_URI', '', 'model tests (folder or git+URL@REV); empty: the pushed revision, else unit_testing/')
        stringParam('MODEL_REF', '', 'deploy only: the tested version to approve and deploy (testing:N)')
        booleanParam('DEPLOY', false, 'the tests pipeline never deploys')
    }
    properties {
        githubProjectUrl(ownRepo ? testsRepo : codeRepo)
        pipelineTriggers {
            triggers {
                if (ownRepo) {
                    // POST {JENKINS_URL}/generic-webhook-trigger/invoke with the token (a credential).
                    GenericTrigger {
                        genericVariables {
                            genericVariable {
                                key('TESTS_REVISION')
                                value('$.after')
                                expressionType('JSONPath')
                                defaultValue('')
                            }
                            genericVariable {
                                key('TESTS_REPO')
                                value('$.repository.clone_url')
                                expressionType('JSONPath')
                                defaultValue('')
                            }
                            genericVariable {
                                key('TESTS_REF')
                                value('$.ref')
                                expressionType('JSONPath')
                                defaultValue('')
                            }
                        }
                        tokenCredentialId('tests-webhook-token')
                        causeString('model tests push $TESTS_REVISION')
                        printContributedVariables(true)
                        printPostContent(false)
                        silentResponse(false)
                        regexpFilterText('$TESTS_REPO $TESTS_REF')
                        regexpFilterExpression(java.util.regex.Pattern.quote(testsRepo) + ' refs/heads/' +
                                               java.util.regex.Pattern.quote(testsBranch))
                    }
                } else {
                    githubPush()
                }
            }
        }
    }
    definition {
        cpsScm {
            scm {
                git {
                    remote {
                        url(codeRepo)
                        credentials('github-token')
                    }
                    branch(codeBranch)
                    if (!ownRepo) {
                        extensions {
                            pathRestriction {
                                includedRegions('unit_testing/.*')
                                excludedRegions('')
                            }
                        }
                    }
                }
            }
            scriptPath('Jenkinsfile')
            lightweight(false)
        }
    }
}
