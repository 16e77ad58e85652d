"""Host configuration, domain side: what a llama-swap config says (`hostcfg`), the fleet diff (`diff`), lint
(`lint`), validation before an edit (`validate`) and the safe edit over SSH (`edit`). `hostcfg`, `diff`, `lint`
and `validate` are pure functions of parsed configs and measured facts; `edit` does the I/O."""
