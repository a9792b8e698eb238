"""Drives leasehold with hvac as hvac's docs show for the system backend,
tokens, policies and leases; every call must work and answer what Vault does."""

import os

import hvac

client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
assert client.is_authenticated()
assert client.sys.is_initialized()
assert not client.sys.is_sealed()

# Health, as hvac asks for it (booleans as Python writes them).
health = client.sys.read_health_status(method="GET", standby_ok=True)
health = health if isinstance(health, dict) else health.json()
assert health["initialized"] and not health["sealed"], health
assert client.sys.read_seal_status()["sealed"] is False
assert client.sys.read_leader_status()["ha_enabled"] is False

# Policies.
client.sys.create_or_update_policy(
    name="reader", policy='path "secret/*" { capabilities = ["read"] }'
)
assert "reader" in client.sys.list_policies()["data"]["policies"]
assert "secret/*" in client.sys.read_policy(name="reader")["data"]["rules"]

# Tokens.
created = client.auth.token.create(policies=["reader"], ttl="1h", explicit_max_ttl="2h")
child = created["auth"]["client_token"]
accessor = created["auth"]["accessor"]
assert client.auth.token.lookup(child)["data"]["accessor"] == accessor
assert client.auth.token.lookup_accessor(accessor)["data"]["policies"] == ["default", "reader"]
renewed = client.auth.token.renew(child, increment="30m")
assert renewed["auth"]["lease_duration"] == 1800, renewed
caps = client.sys.get_capabilities(paths=["secret/x", "sys/mounts"], token=child)
assert caps["data"]["secret/x"] == ["read"], caps
assert caps["data"]["sys/mounts"] == ["deny"], caps
orphan = client.auth.token.create_orphan(ttl="10m")
assert orphan["auth"]["orphan"] is True
client.auth.token.revoke(child)
try:
    client.auth.token.lookup(child)
    raise AssertionError("a revoked token was found")
except hvac.exceptions.Forbidden:
    pass
client.auth.token.revoke_accessor(orphan["auth"]["accessor"])

# Mounts: enable, tune, read the tuning, list, disable.
client.sys.enable_secrets_engine(backend_type="noop", path="n")
client.sys.tune_mount_configuration(path="n", default_lease_ttl="30m", max_lease_ttl="1h")
tuned = client.sys.read_mount_configuration(path="n")
assert tuned["data"]["default_lease_ttl"] == 1800, tuned
assert "n/" in client.sys.list_mounted_secrets_engines()["data"]

# Leases of a credential: read, lookup, renew, list, revoke.
client.write("n/config/c", allowed_roles="*")
client.write("n/roles/r", db_name="c", default_ttl="10m")
issued = client.read("n/creds/r")
lease_id = issued["lease_id"]
assert client.sys.read_lease(lease_id=lease_id)["data"]["id"] == lease_id
assert client.sys.renew_lease(lease_id=lease_id, increment=600)["lease_duration"] == 600
assert client.sys.list_leases(prefix="n/creds/r")["data"]["keys"]
client.sys.revoke_lease(lease_id=lease_id)
client.sys.revoke_prefix(prefix="n/creds/r")
client.sys.disable_secrets_engine(path="n")

# Audit devices.
client.sys.enable_audit_device(
    device_type="file", path="file", options={"file_path": os.environ["AUDIT_FILE"]}
)
assert "file/" in client.sys.list_enabled_audit_devices()["data"]
client.sys.disable_audit_device(path="file")

# Keys.
term = client.sys.get_encryption_key_status()["data"]["term"]
client.sys.rotate_encryption_key()
assert client.sys.get_encryption_key_status()["data"]["term"] == term + 1

print("hvac: every call worked")
