# Arrival triggers: an S3 object created under a configured prefix (and with a configured suffix) of a
# bucket whose EventBridge notifications are on starts a pipeline with one parameter set to that object.
#
# A rule cannot pass event values as SageMaker pipeline parameters (its SageMakerPipelineParameters are
# constants) and provider 3.39 has no sagemaker_pipeline_target: the rule's input transformer hands the
# arrival function (deployed by run-pipeline) the pipeline, the parameter and the object, and the
# function starts the pipeline. Works the same on AWS and on the sandbox.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name_prefix" {
  type = string
}

variable "bucket" {
  description = "The bucket data lands in (bootstrap-account turns on its EventBridge notifications)."
  type        = string
}

variable "function_arn" {
  description = "The arrival function: starts the pipeline the event names."
  type        = string
}

variable "triggers" {
  description = "One rule per trigger: objects under prefix ending in suffix start pipeline_name with parameter = s3://bucket/key."
  type = list(object({
    name          = string
    prefix        = string
    suffix        = string
    pipeline_name = string
    parameter     = string
  }))
}

locals {
  triggers = { for t in var.triggers : t.name => t }
}

resource "aws_cloudwatch_event_rule" "arrival" {
  for_each    = local.triggers
  name        = "${var.name_prefix}-arrival-${each.key}"
  description = "An object created under s3://${var.bucket}/${each.value.prefix}${each.value.suffix != "" ? " ending in ${each.value.suffix}" : ""} starts ${each.value.pipeline_name}."
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [var.bucket] }
      # a prefix and a suffix on one field: a wildcard (EventBridge matches * across '/')
      object = { key = [each.value.suffix != "" ? { wildcard = "${each.value.prefix}*${each.value.suffix}" } : { prefix = each.value.prefix }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "start_pipeline" {
  for_each  = local.triggers
  rule      = aws_cloudwatch_event_rule.arrival[each.key].name
  target_id = "start-${each.key}"
  arn       = var.function_arn

  input_transformer {
    input_paths = {
      bucket = "$.detail.bucket.name"
      key    = "$.detail.object.key"
      id     = "$.id"
    }
    input_template = <<-EOT
      {"pipeline": "${each.value.pipeline_name}", "parameter": "${each.value.parameter}", "bucket": <bucket>, "key": <key>, "event_id": <id>, "trigger": "${each.key}"}
    EOT
  }
}

resource "aws_lambda_permission" "arrival" {
  for_each      = local.triggers
  statement_id  = "${var.name_prefix}-arrival-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = var.function_arn
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.arrival[each.key].arn
}

output "rule_names" {
  value = [for r in aws_cloudwatch_event_rule.arrival : r.name]
}
