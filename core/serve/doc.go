// Package serve is `crs-ci serve`: a small HTTP service that receives the distribution registry's push
// notifications (its notifications.endpoints webhook, events.go) and Harbor 2.x PUSH_ARTIFACT webhooks
// (harbor.go), and instruments every newly pushed tag its
// configuration selects, pushing <tag>-layered beside it with the instrument engine. A notification is
// acknowledged only after its job is appended and fsynced to a journal; jobs are deduplicated by
// REPOSITORY:TAG@DIGEST, run by a bounded pool with retries, backoff and a per-job timeout, resumed after a
// restart, and never pushed twice. /healthz, /readyz, /metrics (Prometheus text) and JSON logs (log/slog)
// make it operable. See docs/serve.md.
package serve
