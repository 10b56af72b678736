# The environment's notification rules (notifications.rules in its YAML, rendered by `promote infra`): one
# EventBridge rule per entry whose input transformer turns the matching event into the rule's message on
# the topic it names. Which events: SageMaker's pipeline execution and step status changes and the model
# registry's package state changes (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html).

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

variable "rules" {
  description = "name, description, topic (a key of topic_arns), event_pattern (JSON), input_paths, input_template."
  type = list(object({
    name           = string
    description    = string
    topic          = string
    event_pattern  = string
    input_paths    = map(string)
    input_template = string
  }))
}

variable "topic_arns" {
  description = "The environment's topics by key: default, and the ones notifications.topics and rule recipients add."
  type        = map(string)
}

locals {
  rules = { for r in var.rules : r.name => r }
}

resource "aws_cloudwatch_event_rule" "notify" {
  for_each      = local.rules
  name          = "${var.name_prefix}-${each.key}"
  description   = each.value.description
  event_pattern = each.value.event_pattern
}

resource "aws_cloudwatch_event_target" "notify" {
  for_each  = local.rules
  rule      = aws_cloudwatch_event_rule.notify[each.key].name
  target_id = "notify"
  arn       = var.topic_arns[each.value.topic]

  input_transformer {
    input_paths    = each.value.input_paths
    input_template = each.value.input_template
  }
}

output "rule_arns" {
  description = "Rule ARN by rule name."
  value       = { for name, r in aws_cloudwatch_event_rule.notify : name => r.arn }
}
