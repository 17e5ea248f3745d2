"""A local stand-in for the Hugging Face Hub's upload API, served on 127.0.0.1.

It speaks what ``huggingface_hub`` sends for ``create_repo`` and ``upload_folder`` (read from
the installed client's ``hf_api.py`` and ``_commit_api.py``):

- ``POST /api/repos/create`` ``{"name", "organization", "type", "visibility"}`` -> ``{"url"}``,
  409 with the ``url`` when the repo exists (``exist_ok=True`` accepts that);
- ``POST /api/validate-yaml`` ``{"content", "repoType"}`` -> ``{"errors": [], "warnings": []}``
  (the client validates a README.md's metadata before uploading it);
- ``POST /api/models/{org}/{name}/preupload/{revision}`` ``{"files": [{"path", "sample",
  "size"}]}`` -> ``{"files": [{"path", "uploadMode", "shouldIgnore", "oid"}]}``; this server
  answers ``regular`` for every file, so the content travels in the commit itself;
- ``POST /api/models/{org}/{name}/commit/{revision}``: ndjson, a ``header`` line then one
  ``file`` line per file with base64 content -> ``{"commitUrl", "commitOid"}``.

The Hub is the one part of publishing that cannot run here, so this fake is the only one in the
publish tests; everything it receives is kept for the tests to inspect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

__all__ = ["Commit", "FakeHub"]

REPO_PATH = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<action>preupload|commit)/"
                       r"(?P<revision>[^/?]+)")


@dataclass
class Commit:
    """One commit the server accepted."""

    repo_id: str
    revision: str
    summary: str
    files: dict[str, bytes]


@dataclass
class FakeHub:
    """The server's state: repos, commits, every request line and token seen."""

    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    refuse_commits_with: int | None = None
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def files(self, repo_id: str) -> dict[str, bytes]:
        """The repo's files after every commit so far."""
        merged: dict[str, bytes] = {}
        for commit in self.commits:
            if commit.repo_id == repo_id:
                merged.update(commit.files)
        return merged

    def start(self) -> FakeHub:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _reply(self, status: int, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_GET(self) -> None:
            hub.requests.append(("GET", self.path))
            self._reply(404, {"error": f"not served: {self.path}"})

        def do_POST(self) -> None:
            hub.requests.append(("POST", self.path))
            hub.tokens.append(self.headers.get("Authorization", ""))
            body = self._body()
            if self.path == "/api/repos/create":
                return self._create(json.loads(body))
            if self.path == "/api/validate-yaml":
                return self._validate_yaml(json.loads(body))
            match = REPO_PATH.match(self.path)
            if match is None:
                return self._reply(404, {"error": f"not served: {self.path}"})
            repo_id = match["repo"].replace("%2F", "/")
            if repo_id not in hub.repos:
                return self._reply(404, {"error": "Repository not found"},
                                   {"X-Error-Code": "RepoNotFound"})
            if match["action"] == "preupload":
                return self._preupload(json.loads(body))
            return self._commit(repo_id, match["revision"], body)

        def _create(self, payload: dict[str, Any]) -> None:
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in hub.repos:
                # The Hub names the existing repo's url; create_repo(exist_ok=True) returns it.
                return self._reply(409, {"error": "You already created this model repo",
                                         "url": f"{hub.url}/{repo_id}"})
            hub.repos[repo_id] = payload
            self._reply(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def _validate_yaml(self, payload: dict[str, Any]) -> None:
            content = payload["content"]
            errors = []
            if content.startswith("---\n"):
                try:
                    yaml.safe_load(content.split("---\n", 2)[1])
                except yaml.YAMLError as error:
                    errors.append({"message": str(error)})
            self._reply(400 if errors else 200, {"errors": errors, "warnings": []})

        def _preupload(self, payload: dict[str, Any]) -> None:
            self._reply(200, {"files": [
                {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": None} for item in payload["files"]]})

        def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
            if hub.refuse_commits_with is not None:
                return self._reply(hub.refuse_commits_with, {"error": "commit refused"})
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header, operations = lines[0], lines[1:]
            files = {}
            for operation in operations:
                if operation["key"] != "file" or operation["value"]["encoding"] != "base64":
                    return self._reply(400, {"error": f"unexpected operation {operation['key']}"})
                files[operation["value"]["path"]] = base64.b64decode(
                    operation["value"]["content"])
            hub.commits.append(Commit(repo_id, revision, header["value"]["summary"], files))
            oid = hashlib.sha1(body).hexdigest()
            self._reply(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}",
                              "commitOid": oid, "pullRequestUrl": None})

    return Handler
