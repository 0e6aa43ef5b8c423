#!/usr/bin/env python3
"""A stand-in for Spotify's accounts service and Web API, for the API fuzz run (.ci/api-fuzz).

    python3 .ci/fake_spotify.py PORT_FILE USER_ID

Listens on a free port of 127.0.0.1 and writes it to PORT_FILE. Every call the server
makes answers as Spotify answers it today (the shapes of `echostats-core/src/spotify/wire.rs`,
without the fields removed in Feb 2026): any authorization code and refresh token are
accepted, `/v1/me` is USER_ID, and any bearer token is good. So the server's
Spotify-backed routes reach their successful answers whatever the fuzzer sends; the Rust
tests (`echostats-http/tests/server_spotify.rs`) cover Spotify's refusals and errors.

Unknown paths answer Spotify's 404, and every call is logged to standard error: a route
the server calls and this file does not know shows up there.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ARTIST = {"id": "4Z8W4fKeB5YxbusRsdQVPb", "name": "Radiohead", "type": "artist",
          "uri": "spotify:artist:4Z8W4fKeB5YxbusRsdQVPb"}
IMAGES = [{"url": "https://i.scdn.co/image/cover", "height": 640, "width": 640}]
ALBUM = {"id": "6GjwtEZcfenmof6l18N7T7", "name": "Kid A", "album_type": "album", "total_tracks": 10,
         "release_date": "2000-10-02", "release_date_precision": "day", "type": "album",
         "artists": [ARTIST], "images": IMAGES}
TRACK = {"id": "2kRFrWaLWifQkBFasAWgMo", "name": "Everything In Its Right Place", "type": "track",
         "duration_ms": 250000, "explicit": False, "uri": "spotify:track:2kRFrWaLWifQkBFasAWgMo",
         "artists": [ARTIST], "album": ALBUM}
EPISODE = {"id": "ep1", "name": "Ep. 1: Machines", "type": "episode", "duration_ms": 3600000, "images": IMAGES,
           "show": {"id": "show1", "name": "Daily Radio", "publisher": "Radio", "type": "show"}}


def page(items: list, query: dict, key: str | None = None) -> dict:
    """An offset-paged answer; wrapped under `key` as the browse endpoints do."""
    limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0))
    body = {"href": "https://api.spotify.com/v1/x", "items": items, "limit": limit, "offset": offset,
            "total": len(items), "next": None, "previous": None}
    return {key: body} if key else body


def web_api(method: str, path: str, query: dict, user_id: str) -> tuple[int, dict | None]:
    """The Web API: (status, JSON body or None for 204)."""
    if method in ("PUT", "POST") and path.startswith("/v1/me/player/"):
        return 204, None  # play, pause, next, previous: Spotify's empty success
    if path == "/v1/me":
        return 200, {"id": user_id, "display_name": user_id, "type": "user", "uri": f"spotify:user:{user_id}",
                     "images": IMAGES}
    if path == "/v1/me/player":
        return 200, {"device": {"id": "abc123", "is_active": True, "is_private_session": False,
                                "is_restricted": False, "name": "Fuzz Box", "type": "Computer",
                                "volume_percent": 65, "supports_volume": True},
                     "shuffle_state": False, "smart_shuffle": False, "repeat_state": "off",
                     "timestamp": int(time.time() * 1000), "context": None, "progress_ms": 120000, "item": TRACK,
                     "currently_playing_type": "track", "actions": {"disallows": {"resuming": True}},
                     "is_playing": True}
    if path == "/v1/me/player/devices":
        return 200, {"devices": [{"id": "abc123", "is_active": True, "is_private_session": False,
                                  "is_restricted": False, "name": "Fuzz Box", "type": "Computer",
                                  "volume_percent": 65, "supports_volume": True}]}
    if path == "/v1/me/player/queue":
        return 200, {"currently_playing": TRACK, "queue": [TRACK, EPISODE]}
    if path == "/v1/me/player/recently-played":
        played_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3600))
        item = {"track": TRACK, "played_at": played_at,
                "context": {"type": "album", "uri": f"spotify:album:{ALBUM['id']}"}}
        return 200, {"items": [item], "limit": int(query.get("limit", 20)), "cursors": {"after": "1", "before": "1"}}
    if path == "/v1/me/playlists":
        playlist = {"id": "pl1", "name": "Fuzz", "description": "", "images": IMAGES,
                    "items": {"href": "https://api.spotify.com/v1/playlists/pl1/items", "total": 10},
                    "owner": {"id": user_id, "display_name": user_id}, "public": True, "collaborative": False,
                    "external_urls": {"spotify": "https://open.spotify.com/playlist/pl1"},
                    "type": "playlist", "uri": "spotify:playlist:pl1"}
        return 200, page([playlist], query)
    if path == "/v1/me/following":
        artist = dict(ARTIST, genres=["art rock"], images=IMAGES)
        return 200, {"artists": {"href": "https://api.spotify.com/v1/me/following", "items": [artist],
                                 "limit": int(query.get("limit", 20)), "next": None, "total": 1,
                                 "cursors": {"after": None}}}
    if path == "/v1/me/albums":
        return 200, page([{"added_at": "2024-05-01T12:00:00Z", "album": ALBUM}], query)
    if path == "/v1/browse/new-releases":
        return 200, page([ALBUM], query, "albums")
    if path == "/v1/browse/categories":
        category = {"href": "https://api.spotify.com/v1/browse/categories/toplists", "id": "toplists",
                    "name": "Top Lists", "icons": IMAGES}
        return 200, page([category], query, "categories")
    if path.startswith("/v1/artists/"):
        return 200, dict(ARTIST, id=path.rsplit("/", 1)[1], genres=["art rock"], images=IMAGES)
    return 404, {"error": {"status": 404, "message": "Service not found"}}


class Handler(BaseHTTPRequestHandler):
    user_id = "demo"

    def answer(self, status: int, body: dict | None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.command == "POST" and url.path == "/api/token":
            form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            if form.get("grant_type") not in ("authorization_code", "refresh_token"):
                return self.answer(400, {"error": "unsupported_grant_type"})
            tokens = {"access_token": f"access-{time.time_ns()}", "token_type": "Bearer", "expires_in": 3600,
                      "scope": "user-read-recently-played user-read-playback-state playlist-read-private"}
            if form["grant_type"] == "authorization_code":
                tokens["refresh_token"] = "refresh-fuzz"
            return self.answer(200, tokens)
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            return self.answer(401, {"error": {"status": 401, "message": "No token provided"}})
        try:
            self.answer(*web_api(self.command, url.path, query, self.user_id))
        except ValueError:  # a limit or offset Spotify would refuse
            self.answer(400, {"error": {"status": 400, "message": "Invalid limit"}})

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("fake spotify: " + fmt % args + "\n")


def main() -> None:
    port_file, Handler.user_id = sys.argv[1], sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
