"""A small OAuth2 provider speaking WeChat's and QQ's sign-in protocols,
served on loopback for the tests (the real endpoints are on the internet)."""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from wsgiref.simple_server import WSGIRequestHandler, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class FakeProvider:
    """Issues codes for users the test names, then answers token, openid and
    user-info requests the way the real platforms do."""

    def __init__(self, app_id="test-app", secret="test-secret"):
        self.app_id, self.secret = app_id, secret
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.requests: list[str] = []
        self.server = make_server("127.0.0.1", 0, self.app, handler_class=_Quiet)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def consent(self, authorize_url: str, openid: str, unionid: str | None = None, nickname: str = "小明"):
        """The user approves: returns the redirect URL with code and state."""
        parsed = urllib.parse.urlparse(authorize_url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        client = query.get("appid") or query.get("client_id")
        assert client == self.app_id, "authorize URL carries the wrong app id"
        code = secrets.token_hex(8)
        self.codes[code] = {"openid": openid, "unionid": unionid, "nickname": nickname,
                            "redirect_uri": query["redirect_uri"]}
        sep = "&" if "?" in query["redirect_uri"] else "?"
        return f"{query['redirect_uri']}{sep}{urllib.parse.urlencode({'code': code, 'state': query['state']})}"

    def _json(self, start_response, body):
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def _redeem(self, code):
        grant = self.codes.pop(code, None)  # codes are single use
        if grant is None:
            return None
        token = secrets.token_hex(12)
        self.tokens[token] = grant
        return token, grant

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        self.requests.append(path)
        if path == "/sns/oauth2/access_token":  # WeChat
            if query.get("appid") != self.app_id or query.get("secret") != self.secret:
                return self._json(start_response, {"errcode": 40125, "errmsg": "invalid appsecret"})
            redeemed = self._redeem(query.get("code", ""))
            if redeemed is None:
                return self._json(start_response, {"errcode": 40029, "errmsg": "invalid code"})
            token, grant = redeemed
            body = {"access_token": token, "expires_in": 7200, "refresh_token": "r", "openid": grant["openid"],
                    "scope": "snsapi_login"}
            if grant["unionid"]:
                body["unionid"] = grant["unionid"]
            return self._json(start_response, body)
        if path == "/sns/userinfo":
            grant = self.tokens.get(query.get("access_token", ""))
            if grant is None or grant["openid"] != query.get("openid"):
                return self._json(start_response, {"errcode": 40001, "errmsg": "invalid credential"})
            return self._json(start_response, {"openid": grant["openid"], "nickname": grant["nickname"],
                                               "headimgurl": f"{self.url}/avatar/{grant['openid']}.png",
                                               "unionid": grant["unionid"]})
        if path == "/oauth2.0/token":  # QQ
            if query.get("client_id") != self.app_id or query.get("client_secret") != self.secret:
                return self._json(start_response, {"error": 100016, "error_description": "invalid client"})
            redeemed = self._redeem(query.get("code", ""))
            if redeemed is None or redeemed[1]["redirect_uri"] != query.get("redirect_uri"):
                return self._json(start_response, {"error": 100019, "error_description": "code invalid"})
            return self._json(start_response, {"access_token": redeemed[0], "expires_in": 7776000})
        if path == "/oauth2.0/me":
            grant = self.tokens.get(query.get("access_token", ""))
            if grant is None:
                return self._json(start_response, {"error": 100016, "error_description": "token invalid"})
            body = {"client_id": self.app_id, "openid": grant["openid"]}
            if grant["unionid"] and query.get("unionid") == "1":
                body["unionid"] = grant["unionid"]
            return self._json(start_response, body)
        if path == "/user/get_user_info":
            grant = self.tokens.get(query.get("access_token", ""))
            if grant is None or query.get("oauth_consumer_key") != self.app_id:
                return self._json(start_response, {"ret": 100030, "msg": "no permission"})
            return self._json(start_response, {"ret": 0, "nickname": grant["nickname"],
                                               "figureurl_qq_2": f"{self.url}/qq/{grant['openid']}.png"})
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
