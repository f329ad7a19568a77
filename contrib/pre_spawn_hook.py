"""A drop-in JupyterHub `pre_spawn_hook` that asks hubpulse whether a spawn may go ahead.

In jupyterhub_config.py:

    import sys
    sys.path.insert(0, "/srv/hubpulse/contrib")          # where this file is
    from pre_spawn_hook import admission_hook
    c.Spawner.pre_spawn_hook = admission_hook(
        "http://hubpulse:9464/v1/admission",
        token_file="/etc/hubpulse/admission-token",       # or token=..., or $HUBPULSE_ADMISSION_TOKEN
    )

To keep an existing hook, call it first: `admission_hook(url, then=my_hook)`.

It posts `{"user", "groups", "profile", "server_name"}` (the profile is `user_options["profile"]`,
as KubeSpawner's form sets it; absent = the policy's default profile) with
`Authorization: Bearer <token>`. On a deny it raises `tornado.web.HTTPError(403, reason)`: the hub
answers the spawn request with 403 and the reason (the REST API's JSON `message`, the spawn
page's error text). If hubpulse cannot be reached it follows `on_error` ("allow" or "deny"):
the last value hubpulse sent (the policy's setting), else the `on_error` argument, else
`$HUBPULSE_ADMISSION_ON_ERROR`, else "deny".
"""

import json
import os

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest


class SpawnWaitError(web.HTTPError):
    """The cluster has no room for this spawn now; `retry_after` seconds is hubpulse's estimate."""

    def __init__(self, message, retry_after):
        super().__init__(503, message)
        self.retry_after = retry_after
        # JupyterHub shows `jupyterhub_message` (else the reason) on the spawn page.
        self.jupyterhub_message = message


def wait_message(answer):
    """The text shown to the user for a "wait" answer."""
    secs = int(answer.get("retry_after_seconds") or 0)
    msg = answer.get("message") or answer.get("reason") or "The cluster has no room for this server right now."
    if secs and "~" not in msg:
        msg += " Try again in about %d min." % max(1, round(secs / 60))
    return msg


def admission_hook(url, token=None, token_file=None, on_error=None, timeout=5.0,
                   profile_key="profile", then=None):
    state = {"on_error": on_error or os.environ.get("HUBPULSE_ADMISSION_ON_ERROR", "deny")}

    def read_token():
        if token:
            return token
        if token_file:
            with open(token_file) as f:
                return f.read().strip()
        return os.environ["HUBPULSE_ADMISSION_TOKEN"]

    async def hook(spawner):
        if then is not None:
            r = then(spawner)
            if hasattr(r, "__await__"):
                await r
        options = spawner.user_options or {}
        body = {
            "user": spawner.user.name,
            "groups": sorted(g.name for g in spawner.user.groups),
            "profile": options.get(profile_key),
            "server_name": spawner.name or "",
        }
        try:
            req = HTTPRequest(url, method="POST", body=json.dumps(body), request_timeout=timeout,
                              headers={"Authorization": "Bearer " + read_token(),
                                       "Content-Type": "application/json"})
            resp = await AsyncHTTPClient().fetch(req)
            answer = json.loads(resp.body)
        except Exception as e:  # unreachable, 401, bad body: the policy's on_error decides
            spawner.log.warning("hubpulse admission check failed (%s); on_error=%s", e, state["on_error"])
            if state["on_error"] == "allow":
                return
            raise web.HTTPError(503, "The spawn policy could not be checked right now. Please try again in a minute.")
        state["on_error"] = answer.get("on_error", state["on_error"])
        if answer.get("decision") == "wait":
            msg = wait_message(answer)
            spawner.log.info("hubpulse admission: %s must wait ~%ss: %s", spawner.user.name,
                             answer.get("retry_after_seconds"), msg)
            raise SpawnWaitError(msg, int(answer.get("retry_after_seconds") or 0))
        if not answer.get("allow"):
            spawner.log.info("hubpulse admission denied %s: %s", spawner.user.name, answer.get("reason"))
            raise web.HTTPError(403, answer.get("reason") or "This spawn is not allowed by the hub's policy.")

    return hook
