"""Password hashing with argon2id (ASVS: memory >= 46 MiB, t=1, p=1).

Hashes are re-computed at login when the parameters change, so raising them
upgrades every account as its owner logs in.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=1, memory_cost=47104, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> tuple[bool, str | None]:
    """``(ok, new_hash)``: ``new_hash`` is set when the stored hash should
    be replaced (its parameters are out of date)."""
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


#: stored for accounts that cannot sign in with a password (created through
#: a third-party sign-in): it is no argon2 hash, so it never verifies
UNUSABLE_PASSWORD = "!unusable"

#: compared against when the account does not exist, so timing does not
#: reveal which usernames exist
DUMMY_HASH = _hasher.hash("learnsail-dummy-password")
