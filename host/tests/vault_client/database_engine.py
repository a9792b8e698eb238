"""Drives leasehold with hvac, the Python Vault client, exactly as hvac's docs
show for the database secrets engine, and checks each credential on nginx."""

import base64
import os
import urllib.error
import urllib.request

import hvac


def login(user, password):
    """The HTTP status nginx answers with these basic-auth credentials."""
    request = urllib.request.Request("http://127.0.0.1:%s/" % os.environ["NGINX_PORT"])
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
    try:
        return urllib.request.urlopen(request).status
    except urllib.error.HTTPError as error:
        return error.code


client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
assert client.is_authenticated()

# Enable the engine, configure a connection, create a role.
client.sys.enable_secrets_engine(backend_type="database")
# What the plugin may reach is granted on the mount, by a sudo holder.
client.write("sys/grants/database", directory=os.environ["TARGET_DIR"])
client.secrets.database.configure(
    name="site",
    plugin_name="htpasswd",
    allowed_roles=["web"],
    file="htpasswd",
    bcrypt_cost=4,
)
client.secrets.database.create_role(
    name="web",
    db_name="site",
    creation_statements=[],
    default_ttl="1h",
    max_ttl="24h",
)
assert client.secrets.database.read_role(name="web")["data"]["db_name"] == "site"
assert client.secrets.database.list_roles()["data"]["keys"] == ["web"]

# Generate credentials: they log in.
creds = client.secrets.database.generate_credentials(name="web")
lease_id = creds["lease_id"]
assert lease_id.startswith("database/creds/web/"), lease_id
assert creds["lease_duration"] == 3600, creds
user, password = creds["data"]["username"], creds["data"]["password"]
assert login(user, password) == 200

# Look up, renew, list.
lease = client.sys.read_lease(lease_id=lease_id)
assert lease["data"]["id"] == lease_id, lease
renewed = client.sys.renew_lease(lease_id=lease_id, increment=7200)
assert renewed["lease_duration"] == 7200, renewed
assert client.sys.read_lease(lease_id=lease_id)["data"]["ttl"] > 3600
listed = client.sys.list_leases(prefix="database/creds/web/")
assert lease_id.rsplit("/", 1)[1] in listed["data"]["keys"], listed

# Revoke: the login fails and the lease is gone.
client.sys.revoke_lease(lease_id=lease_id)
assert login(user, password) == 401
try:
    client.sys.read_lease(lease_id=lease_id)
    raise SystemExit("the revoked lease can still be read")
except hvac.exceptions.InvalidRequest:
    pass

# A read of a missing role is hvac's InvalidPath (404).
try:
    client.secrets.database.read_role(name="missing")
    raise SystemExit("a missing role was read")
except hvac.exceptions.InvalidPath:
    pass

print("hvac: every call worked")
