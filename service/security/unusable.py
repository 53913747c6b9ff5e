class UnusableSecret(Exception):
    """A certificate, key or API-keys file that is missing, unreadable or malformed; the message names it."""
