"""A run with quarantined bills alerts once, by webhook and by e-mail through Airflow's SMTP provider."""

from __future__ import annotations

import json
import socketserver
import threading
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from roger_economic.config import load_file
from tests.integration.helpers import ROOT, run_dags

WINDOW = {"from_date": "2026-10-01", "to_date": "2026-11-26"}


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to receive a message (no TLS, no auth)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _SmtpHandler)


class _SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 sink\r\n")
        while line := self.rfile.readline():
            verb = line.strip().split(b" ")[0].upper()
            if verb == b"EHLO" or verb == b"HELO":
                self.wfile.write(b"250 sink\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.server.messages.append(body)
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.server.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_quarantine_alerts_once_by_webhook_and_email(project_db, airflow_db, sandboxes, monkeypatch):
    smtp = SmtpSink()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    hook.received = []
    for server in (smtp, hook):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ROGER_ECONOMIC_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/alerts")
    monkeypatch.setenv("ROGER_ECONOMIC_ALERT_EMAILS", "bogholder@example.test")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.server_address[1],
                "extra": {"from_email": "roger-economic@example.test", "disable_tls": True, "disable_ssl": True},
            }
        ),
    )
    try:
        load_file(ROOT / "config" / "agreements.example.yaml")
        run = run_dags(WINDOW)
        assert run.state == "success"
        assert len(hook.received) == 1
        alert = hook.received[0]
        assert alert["run_id"] == run.run_id
        assert "agr_0003" in {q["agreement"] for q in alert["quarantined"]}
        assert all(q["bills"] > 0 for q in alert["quarantined"])
        assert len(smtp.messages) == 1
        mail = message_from_bytes(smtp.messages[0])
        subject = str(make_header(decode_header(mail["Subject"])))
        assert "quarantined" in subject and mail["To"] == "bogholder@example.test"
        body = "".join(part.get_payload(decode=True).decode() for part in mail.walk() if not part.is_multipart())
        assert "agr_0003" in body
    finally:
        smtp.shutdown()
        hook.shutdown()
