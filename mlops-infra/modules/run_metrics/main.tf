# Runs by status and duration: when an execution of one of the environment's pipelines reaches a terminal
# status (Succeeded, Failed, Stopped), EventBridge's "SageMaker Model Building Pipeline Execution Status
# Change" event invokes the run-metrics function (deployed by run-pipeline), which publishes
# PipelineRuns{Pipeline,Status} = 1 and PipelineDuration{Pipeline} in MLOps/<project> (pipelines/metrics.py).
#
# One rule per pipeline: its input transformer names the pipeline's kind (the Pipeline dimension), which
# the event itself does not carry. Works the same on AWS and on the sandbox.

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

variable "function_name" {
  description = "The run-metrics function: publishes PipelineRuns and PipelineDuration."
  type        = string
}

variable "account_id" {
  type = string
}

variable "region" {
  type = string
}

variable "namespace" {
  description = "The project's CloudWatch namespace, MLOps/<project>."
  type        = string
}

variable "environment" {
  description = "The Environment dimension."
  type        = string
}

variable "pipelines" {
  description = "The environment's pipelines by kind (train, hpo, inference, quality: the Pipeline dimension)."
  type        = map(string)
}

data "aws_partition" "current" {}

locals {
  function_arn = "arn:${data.aws_partition.current.partition}:lambda:${var.region}:${var.account_id}:function:${var.function_name}"
}

resource "aws_cloudwatch_event_rule" "ended" {
  for_each    = var.pipelines
  name        = "${var.name_prefix}-run-metrics-${each.key}"
  description = "An execution of ${each.value} ended: publish PipelineRuns and PipelineDuration (Pipeline=${each.key})."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
    detail = {
      pipelineArn                    = [each.value]
      currentPipelineExecutionStatus = ["Succeeded", "Failed", "Stopped"]
    }
  })
}

resource "aws_cloudwatch_event_target" "publish" {
  for_each  = var.pipelines
  rule      = aws_cloudwatch_event_rule.ended[each.key].name
  target_id = "publish-run-metrics"
  arn       = local.function_arn

  input_transformer {
    input_paths = {
      status    = "$.detail.currentPipelineExecutionStatus"
      start     = "$.detail.executionStartTime"
      end       = "$.detail.executionEndTime"
      execution = "$.detail.pipelineExecutionArn"
    }
    input_template = <<-EOT
      {"namespace": "${var.namespace}", "environment": "${var.environment}", "pipeline": "${each.key}", "status": <status>, "start": <start>, "end": <end>, "execution": <execution>}
    EOT
  }
}

resource "aws_lambda_permission" "ended" {
  for_each      = var.pipelines
  statement_id  = "${var.name_prefix}-run-metrics-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = local.function_arn
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.ended[each.key].arn
}

output "rule_names" {
  value = [for r in aws_cloudwatch_event_rule.ended : r.name]
}
