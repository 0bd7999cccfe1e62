"""The event log: what the service showed (impressions) and what users did (feedback).

The gateways append to it; `aiqleads events ingest` turns it into daily spans under the data
contracts; the online-quality monitor and `aiqleads quality report` read it. The log is a
dedicated Redis instance with append-only persistence (docs/event_log.md says why).
"""
