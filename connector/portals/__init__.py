"""Portal adapters, one per transport profile, all behind `connector.ports.Portal`.

    rest.py      JSON over HTTPS (the VPCP adapter)
    session.py   the shared session token: one login per expiry, refusals remembered
    classify.py  what a reply means (pure; shared by every profile)
    retrying.py  short in-call retries with backoff, jitter and Retry-After
    wire.py      the pooled HTTPS client, TLS, bounded replies, httpx errors translated

A SOAP profile slots in as `soap.py` beside `rest.py`, reusing session, classify and
retrying. Import the adapter module you need; this package imports none eagerly so the
SOAP stack is loaded only when configured.
"""
