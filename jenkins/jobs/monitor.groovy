// Job DSL: the monitoring job. Every six hours it runs jenkins/monitor.Jenkinsfile: `mlops monitor` on
// production's last 24 hours of traffic and feedback; a crossed threshold emails the product owner.
String codeRepo = System.getenv('MLOPS_CODE_REPO') ?: 'https://github.com/example/mlops-xray.git'
String codeBranch = System.getenv('MLOPS_CODE_BRANCH') ?: 'main'

pipelineJob('mlops/monitor') {
    description('Production monitoring: drift of live traffic against the reference profile and live ' +
                'accuracy from feedback (mlops monitor); UNSTABLE and an email when a threshold is crossed.')
    logRotator {
        numToKeep(200)
        artifactNumToKeep(50)
    }
    parameters {
        stringParam('MODEL_REF', 'production:current', 'the version whose live traffic is checked')
        stringParam('WINDOW', '24h', 'how far back to look: 90m, 24h, 7d')
        booleanParam('RETRAIN', false, 'start mlops/dataset when live accuracy falls below the gate')
    }
    properties {
        disableConcurrentBuilds {
            abortPrevious(false)
        }
        pipelineTriggers {
            triggers {
                cron {
                    spec('H H/6 * * *')
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
            scriptPath('jenkins/monitor.Jenkinsfile')
            lightweight(true)
        }
    }
}
