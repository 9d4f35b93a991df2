// Job DSL: the dataset job. A push to the dataset repository retrains the production model on exactly
// the pushed revision: the webhook's DATASET_REPO and DATASET_REVISION (`after`) become
// `mlops retrain --data git+REPO@REVISION`, which checks that commit out read-only, validates it against
// production's data and records repository and commit in the lineage. Two quick pushes are two builds,
// each on its own commit. It runs the Jenkinsfile of the code repository; the job name 'dataset' selects
// the data pipeline.
String codeRepo = System.getenv('MLOPS_CODE_REPO') ?: 'https://github.com/example/mlops-xray.git'
String codeBranch = System.getenv('MLOPS_CODE_BRANCH') ?: 'main'
String datasetRepo = System.getenv('MLOPS_DATASET_REPO') ?: 'https://github.com/example/mlops-xray-dataset.git'

pipelineJob('mlops/dataset') {
    description("Push to ${datasetRepo}: retrain the production model (else the latest testing one) on " +
                'the new data, gate, register, test, email, then approval and deploy.')
    logRotator {
        numToKeep(50)
        artifactNumToKeep(20)
    }
    parameters {
        choiceParam('PIPELINE', ['auto', 'data', 'code', 'tests', 'deploy'], 'auto: this job runs the data pipeline')
        stringParam('DATA_URI', '', 'the new dataset (folder, gs:// prefix or git+URL@REV); empty: the pushed ' +
                    'revision (git+DATASET_REPO@DATASET_REVISION), else MLOPS_DATA_URI')
        stringParam('SUITE_URI', '', 'model tests (folder or git+URL@REV); empty: unit_testing/ of the code')
        stringParam('MODEL_REF', '', 'deploy only: the tested version to approve and deploy (testing:N)')
        booleanParam('DEPLOY', true, 'ask the product owner for approval, then deploy the tested version')
    }
    properties {
        disableConcurrentBuilds {
            abortPrevious(false)
        }
        pipelineTriggers {
            triggers {
                // POST {JENKINS_URL}/generic-webhook-trigger/invoke with the token (a credential).
                GenericTrigger {
                    genericVariables {
                        genericVariable {
                            key('DATASET_REVISION')
                            value('$.after')
                            expressionType('JSONPath')
                            defaultValue('')
                        }
                        genericVariable {
                            key('DATASET_REPO')
                            value('$.repository.clone_url')
                            expressionType('JSONPath')
                            defaultValue('')
                        }
                    }
                    tokenCredentialId('dataset-webhook-token')
                    causeString('dataset push $DATASET_REVISION')
                    printContributedVariables(true)
                    printPostContent(false)
                    silentResponse(false)
                    regexpFilterText('$DATASET_REPO')
                    regexpFilterExpression(java.util.regex.Pattern.quote(datasetRepo))
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
                }
            }
            scriptPath('Jenkinsfile')
            lightweight(false)
        }
    }
}
