// Job DSL: the approval/deploy job for semi-automated deploys. Started by hand (Build with
// Parameters) with a tested version; the product owner approves it (input), then it goes to
// staging, is smoke-tested, promoted, and rolled out to production with automatic rollback.
String codeRepo = System.getenv('MLOPS_CODE_REPO') ?: 'https://github.com/example/mlops-xray.git'
String codeBranch = System.getenv('MLOPS_CODE_BRANCH') ?: 'main'

pipelineJob('mlops/deploy') {
    description('Approve and deploy an already tested version (MODEL_REF, e.g. testing:7).')
    logRotator {
        numToKeep(100)
    }
    parameters {
        choiceParam('PIPELINE', ['deploy', 'auto', 'code', 'data', 'tests'], 'deploy: approval, staging, promote, production')
        stringParam('DATA_URI', '', 'unused by the deploy pipeline')
        stringParam('MODEL_REF', '', 'the tested version to approve and deploy (testing:N)')
        booleanParam('DEPLOY', true, 'must stay on for this job')
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
            lightweight(true)
        }
    }
}
