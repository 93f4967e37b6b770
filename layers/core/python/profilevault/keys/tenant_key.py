"""The tenant's own KMS key (BYOK), switched through the API and audited."""
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.wiring import Deps


def use_kms_key(deps: Deps, kms_key_arn: str, actor: Actor) -> dict:
    """Switches the keyring to `kms_key_arn`; a switch to the key already in use changes nothing and is not
    audited as a change."""
    before = deps.keyring.describe()["version"]
    described = deps.keyring.use_kms_key(kms_key_arn)
    if described["version"] != before:
        trail.record(deps, "tenant_key.changed", actor, {"kms_key_arn": described["kms_key_arn"]},
                     {"keyring_version": described["version"]})
    return described
