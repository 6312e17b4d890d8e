"""The batch_notifier loop's names: kept alive by the poller service, replaced by register."""

NOTIFIER_WORKFLOW = "batch_notifier"
NOTIFIER_VERSION = 1
NOTIFIER_CORRELATION_ID = "batch_notifier"
