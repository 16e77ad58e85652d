"""The registry's ssh block: defaults, and one-line errors naming file, line and field."""

from __future__ import annotations

import pytest

from core.providers import RegistryError, SshAccess, dump_registry, parse_registry


def test_ssh_block_defaults_and_round_trip():
    reg = parse_registry("providers:\n  - id: gpu\n    base_url: http://10.0.0.5:8080\n"
                         "    ssh: {config_path: /etc/llama-swap/config.yaml}\n"
                         "  - id: other\n    base_url: http://[::1]:9000\n"
                         "    ssh: {config_path: /c.yaml, user: llama, port: 2222, key: k1, host: box,"
                         " reload_command: systemctl reload llama-swap}\n", "f.yaml")
    assert reg.get("gpu").ssh == SshAccess(host="10.0.0.5", config_path="/etc/llama-swap/config.yaml")
    assert reg.get("other").ssh == SshAccess(host="box", config_path="/c.yaml", user="llama", port=2222, key="k1",
                                             reload_command="systemctl reload llama-swap")
    again = parse_registry(dump_registry(reg.providers, reg.default_provider))
    assert [p.ssh for p in again.providers] == [p.ssh for p in reg.providers]


@pytest.mark.parametrize(("ssh", "message"), [
    ("{user: x}", "f.yaml:3: providers[0].ssh.config_path: required: the absolute path of the llama-swap config file"),
    ("{config_path: /c, key: ../id_rsa}", "f.yaml:3: providers[0].ssh.key: must be the NAME of a key file in the "
                                          "data directory's secrets/ (the key itself never goes in this file)"),
    ("{config_path: /c, port: 0}", "f.yaml:3: providers[0].ssh.port: 0 is not a port number"),
    ("{config_path: /c, password: x}", "f.yaml:3: providers[0].ssh: must be a mapping with config_path and "
                                       "optionally host, key, port, reload_command, user"),
])
def test_ssh_block_errors(ssh, message):
    with pytest.raises(RegistryError) as exc:
        parse_registry(f"providers:\n  - id: gpu\n    ssh: {ssh}\n    base_url: http://h:1\n", "f.yaml")
    assert str(exc.value) == message
