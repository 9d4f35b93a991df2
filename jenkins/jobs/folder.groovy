// Job DSL: the folder that holds the mlops jobs (run by JCasC before the job files).
folder('mlops') {
    displayName('mlops-xray')
    description('Code, dataset and model-tests pipelines of the X-ray classifier, and the approval/deploy job.')
}
