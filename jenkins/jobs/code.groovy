// Job DSL: the code job. A push to the training code (this repository) runs the Jenkinsfile's
// code pipeline: train from scratch -> gate -> register (testing) -> model tests -> email -> approval.
// Pushes that touch only unit_testing/ are left to the tests job.
String codeRepo = System.getenv('MLOPS_CODE_REPO') ?: 'https://github.com/example/mlops-xray.git'
String codeBranch = System.getenv('MLOPS_CODE_BRANCH') ?: 'main'

pipelineJob('mlops/code') {
    description('Push to the training code: train from scratch, gate, register in testing, run the model ' +
                'tests in a clone of production, email the product owner, then approval and deploy.')
    logRotator {
        numToKeep(50)
        artifactNumToKeep(20)
    }
    parameters {
        choiceParam('PIPELINE', ['auto', 'code', 'data', 'tests', 'deploy'], 'auto: this job runs the code pipeline')
        stringParam('DATA_URI', '', 'dataset folder or gs:// prefix; empty: MLOPS_DATA_URI of the controller')
        stringParam('MODEL_REF', '', 'deploy only: the tested version to approve and deploy (testing:N)')
        booleanParam('DEPLOY', true, 'ask the product owner for approval, then deploy the tested version')
    }
    properties {
        githubProjectUrl(codeRepo)
        disableConcurrentBuilds {
            abortPrevious(false)
        }
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
                        url(codeRepo)
                        credentials('github-token')
                    }
                    branch(codeBranch)
                    extensions {
                        pathRestriction {
                            includedRegions('')
                            excludedRegions('unit_testing/.*')
                        }
                    }
                }
            }
            scriptPath('Jenkinsfile')
            // A full checkout records the changeset the Jenkinsfile selects the pipeline from.
            lightweight(false)
        }
    }
}
