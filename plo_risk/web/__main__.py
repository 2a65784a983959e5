"""``python -m plo_risk.web --model ... [--host 127.0.0.1 --port 8000]``: run the app.

The same options as ``plo-risk serve``; exits with status 2 and a message when the
server may not start (a non-loopback address without a token, a bad token file).
"""

from __future__ import annotations

import argparse
import sys

from plo_risk.web.app import DEFAULT_AUDIT_LOG, AccessError, serve
from plo_risk.web.audit import AuditError
from plo_risk.web.security import MAX_BODY


def main(argv: list[str] | None = None) -> int:
    """Parse the options and serve until stopped; the exit status."""
    p = argparse.ArgumentParser(prog="python -m plo_risk.web", description=__doc__)
    p.add_argument("--model", required=True, help="bundle folder or MLflow model URI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token-file", default=None, help="file holding the access token")
    p.add_argument("--audit-log", default=str(DEFAULT_AUDIT_LOG))
    p.add_argument("--audit-key-file", default=None)
    p.add_argument(
        "--keep-inputs",
        action="store_true",
        help="also log the inputs (needed by audit replay)",
    )
    p.add_argument("--card", default=None, help="a model card HTML file to serve")
    p.add_argument("--max-body", type=int, default=MAX_BODY)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    try:
        serve(
            args.model,
            host=args.host,
            port=args.port,
            token_file=args.token_file,
            audit_log=args.audit_log,
            audit_key_file=args.audit_key_file,
            keep_inputs=args.keep_inputs,
            card=args.card,
            max_body=args.max_body,
            log_level=args.log_level,
        )
    except (AccessError, AuditError, ValueError, FileNotFoundError) as exc:
        print(f"plo_risk.web: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - the module's entry
    sys.exit(main())
