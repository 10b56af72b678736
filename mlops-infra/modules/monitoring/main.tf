# The environment's CloudWatch dashboard and alarms over the metrics its runs publish (namespace
# MLOps/<project>, dimension Environment; the contract is pipelines/metrics.py). `promote infra` renders
# the dashboard body and the alarm list from the environment YAML; each alarm publishes to the encrypted
# notification topic, whose policy (and key policy) let exactly these alarms do so.

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

variable "namespace" {
  description = "The metrics' namespace: MLOps/<project>."
  type        = string
}

variable "dashboard_body" {
  description = "The dashboard's widgets as JSON."
  type        = string
}

variable "alarms" {
  description = "One alarm per entry (name suffix, metric, dimensions, statistic, period, threshold, comparison, missing data)."
  type = list(object({
    name                = string
    description         = string
    metric_name         = string
    dimensions          = map(string)
    statistic           = string
    period              = number
    evaluation_periods  = number
    comparison_operator = string
    threshold           = number
    treat_missing_data  = string
  }))
}

variable "topic_arn" {
  description = "The encrypted topic the alarms publish to."
  type        = string
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.name_prefix}-monitoring"
  dashboard_body = var.dashboard_body
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each            = { for a in var.alarms : a.name => a }
  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = var.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.evaluation_periods
  comparison_operator = each.value.comparison_operator
  threshold           = each.value.threshold
  treat_missing_data  = each.value.treat_missing_data
  alarm_actions       = [var.topic_arn]
}

output "dashboard_name" {
  value = aws_cloudwatch_dashboard.this.dashboard_name
}

output "alarm_arns" {
  value = { for name, a in aws_cloudwatch_metric_alarm.this : name => a.arn }
}
