output "topic_arn" {
  description = "SNS topic that receives failure and approval notifications."
  value       = module.notifications.topic_arn
}

output "topic_arns" {
  description = "Every notification topic by key: default, and those notifications.topics and rule recipients add."
  value       = merge({ default = module.notifications.topic_arn }, module.notifications.extra_topic_arns)
}

output "topic_key_arn" {
  description = "Customer-managed KMS key encrypting the topics."
  value       = module.notifications.key_arn
}

output "rule_names" {
  description = "EventBridge rules this configuration manages (besides the arrival triggers)."
  value = merge(
    {
      inference_schedule  = module.inference_schedule.rule_name
      retrain_on_drift    = module.retrain_on_drift.rule_name
      hpo_on_quality_drop = module.hpo_on_quality_drop.rule_name
    },
    { for name, arn in module.notification_rules.rule_arns : "notify_${replace(name, "-", "_")}" => element(split("/", arn), 1) },
  )
}

output "dashboard_name" {
  description = "The environment's CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "alarm_arns" {
  description = "The environment's alarms by name; they publish to the topic."
  value       = module.monitoring.alarm_arns
}
