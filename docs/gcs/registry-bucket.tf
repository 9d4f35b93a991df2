# The registry bucket with its audit log protected (registry/README.md, "Audit log on GCS").
# Not applied or validated here: no GCP project or terraform is reachable from CI; review with
# `terraform plan` before use. Names in CAPITALS are yours to set.
#
# Why not a bucket-wide retention policy (Bucket Lock)? It forbids replacing any object younger than
# the period, and the production pointer (production/<name>/pointer.json) is replaced at every
# promotion and rollback; fsck could no longer remove probes. The audit prefix is protected instead:
#  - the identities that write the registry may only CREATE objects under <prefix>/audit/ (no delete,
#    no overwrite: replacing an object needs storage.objects.delete), while keeping full object
#    rights elsewhere;
#  - soft delete keeps every deleted or replaced object recoverable for 90 days (restore a log);
#  - per-object retention (Object Retention Lock) is enabled, so audit objects can be locked one by
#    one (see the gcloud line in registry/README.md) without touching the pointer.

variable "bucket" { default = "BUCKET" }
variable "prefix" { default = "models" } # the registry URI is gs://BUCKET/models
variable "writers" {
  default = ["serviceAccount:jenkins@PROJECT.iam.gserviceaccount.com",
  "serviceAccount:training@PROJECT.iam.gserviceaccount.com"]
}

resource "google_storage_bucket" "registry" {
  name                        = var.bucket
  location                    = "EU"
  uniform_bucket_level_access = true # IAM conditions need it
  enable_object_retention     = true # per-object retention for audit/ objects
  soft_delete_policy {
    retention_duration_seconds = 7776000 # 90 days
  }
}

locals {
  audit = "projects/_/buckets/${var.bucket}/objects/${var.prefix}/audit/"
}

# Everything but the audit log: full object rights.
resource "google_storage_bucket_iam_member" "registry_objects" {
  for_each = toset(var.writers)
  bucket   = google_storage_bucket.registry.name
  role     = "roles/storage.objectAdmin"
  member   = each.value
  condition {
    title      = "not-the-audit-log"
    expression = "!resource.name.startsWith(\"${local.audit}\")"
  }
}

# The audit log: read and create only (create-only writes use ifGenerationMatch=0).
resource "google_storage_bucket_iam_member" "audit_create" {
  for_each = toset(var.writers)
  bucket   = google_storage_bucket.registry.name
  role     = "roles/storage.objectCreator"
  member   = each.value
  condition {
    title      = "audit-log-create-only"
    expression = "resource.name.startsWith(\"${local.audit}\")"
  }
}

resource "google_storage_bucket_iam_member" "audit_read" {
  for_each = toset(var.writers)
  bucket   = google_storage_bucket.registry.name
  role     = "roles/storage.objectViewer"
  member   = each.value
}
