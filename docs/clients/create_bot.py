"""Create a Recall.ai bot through retryd; wait out a 202 for the final answer.
RETRYD_URL=http://127.0.0.1:8080 RECALL_API_KEY=... python3 create_bot.py MEETING_URL"""
import os, sys, uuid
from urllib.parse import urljoin
import requests
from requests.adapters import HTTPAdapter, Retry

BASE = os.environ.get("RETRYD_URL", "http://127.0.0.1:8080")  # retryd, not the API itself
WAIT = 60  # seconds retryd may hold one long-poll (capped by its --max-wait, 120 s)

s = requests.Session()
s.headers["Authorization"] = "Token " + os.environ["RECALL_API_KEY"]
if os.environ.get("RETRYD_TOKEN"):  # retryd's --read-token, if set; never sent upstream
    s.headers["X-Retryd-Token"] = os.environ["RETRYD_TOKEN"]
# Lost connections, timeouts and retryd's 503 (not stored, Retry-After) are
# tried again: safe for the POST too, which resends its Idempotency-Key.
s.mount(BASE, HTTPAdapter(max_retries=Retry(
    total=4, backoff_factor=1, status_forcelist=[503], allowed_methods=None)))

def create_bot(payload, idempotency_key):
    r = s.post(BASE + "/api/v1/bot/", json=payload, headers={"Idempotency-Key": idempotency_key},
               timeout=(5, 75))  # above retryd's --upstream-timeout (60 s)
    if r.status_code != 202:
        return r  # the upstream's own answer: 201, 400, ...
    status_url = urljoin(BASE, r.headers["Location"])
    while True:  # each long-poll returns when the request ends, or after WAIT s
        st = s.get(status_url, headers={"Prefer": f"wait={WAIT}"}, timeout=(5, WAIT + 15))
        st.raise_for_status()
        rq = st.json()
        if rq["state"] == "completed":  # the upstream's final answer, verbatim
            return s.get(status_url + "/response", timeout=(5, 30))
        if rq["state"] in ("dead", "cancelled"):
            raise RuntimeError(f"{rq['id']} {rq['state']} after {rq['attempts']} attempts "
                               f"(last_status {rq['last_status']}, last_error {rq['last_error']})")

if __name__ == "__main__":
    try:  # better: a key derived from your own record, reused if this call is repeated
        r = create_bot({"meeting_url": sys.argv[1], "bot_name": "Notetaker"}, str(uuid.uuid4()))
    except RuntimeError as e:
        sys.exit(f"not created: {e}")
    print(r.status_code, r.text)
    sys.exit(0 if r.ok else 1)
