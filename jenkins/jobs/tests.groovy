// Job DSL: the tests job. A push to the model test suite (unit_testing/) runs the new suite against
// the current model (production:current, else testing:latest) and records the result on that version.
String testsRepo = System.getenv('MLOPS_TESTS_REPO') ?: (System.getenv('MLOPS_CODE_REPO') ?: 'https://github.com/example/mlops-xray.git')
String testsBranch = System.getenv('MLOPS_TESTS_BRANCH') ?: 'main'

pipelineJob('mlops/tests') {
    description('Push to unit_testing/: run the new model tests on the current model and record the result.')
    logRotator {
        numToKeep(50)
    }
    parameters {
        choiceParam('PIPELINE', ['auto', 'tests', 'code', 'data', 'deploy'], 'auto: this job runs the tests pipeline')
        stringParam('DATA_URI', '', 'unused by the tests pipeline')
        stringParam('MODEL_REF', '', 'deploy only: the tested version to approve and deploy (testing:N)')
        booleanParam('DEPLOY', false, 'the tests pipeline never deploys')
    }
    properties {
        githubProjectUrl(testsRepo)
        pipelineTriggers {
            triggers {
                githubPush()
            }
        }
    }
    definition {
        cpsScm {
            scm {
                git {
                    remote {
                        url(testsRepo)
                        credentials('github-token')
                    }
                    branch(testsBranch)
                    extensions {
                        pathRestriction {
                            includedRegions('unit_testing/.*')
                            excludedRegions('')
                        }
                    }
                }
            }
            scriptPath('Jenkinsfile')
            lightweight(false)
        }
    }
}
