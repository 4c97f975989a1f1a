"""The tutorials' numbers computed a second way: plain Python over the generated events.

Each function follows the definition written in its docs/tutorials page, reading the
generator's event dicts (never the store's rows), so a test comparing it with the SQL
checks both the SQL and the way events become rows.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

Event = dict[str, Any]
NONE = "(none)"
BY = ("person", "cookie")  # what the recipes count: people (uids joined by the user ids they logged in with), or cookies


def persons(events: list[Event]) -> dict[str, str]:
    """{uid: person id} as the identity contract defines it, computed here with a union-find.

    An event carrying a user id (``data.user.id``) joins its uid and that user id; a person's
    id is the uid of its member seen first (the lowest position in the stream, which is the
    generator's order); a uid never identified is its own person."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[str, int] = {}
    for i, e in enumerate(events):
        first.setdefault(e["uid"], i)
        root(f"uid:{e['uid']}")
        user_id = e["data"].get("user", {}).get("id")
        if user_id:
            a, b = root(f"uid:{e['uid']}"), root(f"user:{user_id}")
            if a != b:
                parent[b] = a
    oldest: dict[str, str] = {}
    for uid in sorted(first, key=first.__getitem__):
        oldest.setdefault(root(f"uid:{uid}"), uid)
    return {uid: oldest[root(f"uid:{uid}")] for uid in first}


def counter(events: list[Event], by: str) -> dict[str, str]:
    """{uid: what the recipes count it as}: its person (``by="person"``) or itself (``"cookie"``)."""
    if by not in BY:
        raise ValueError(by)
    of = persons(events)
    return of if by == "person" else {uid: uid for uid in of}


def people(events: list[Event]) -> list[Event]:
    """The events of people: the recipes leave out what the edge flagged as a bot (``bot``)."""
    return [e for e in events if not e.get("bot")]


def channel_of(event: Event) -> str:
    """'utm_source / utm_medium' when the session has marks, else the SDK's sess.type."""
    sess = event["data"]["sess"]
    marks = sess.get("marks", {})
    if marks.get("utm_source"):
        return f"{marks['utm_source']} / {marks.get('utm_medium', '')}"
    return str(sess["type"])


def campaign_of(event: Event) -> str:
    return str(event["data"]["sess"].get("marks", {}).get("utm_campaign") or NONE)


def conversion_paths(events: list[Event], conversion: str = "purchase", by: str = "person"
                     ) -> list[tuple[str, float, int, list[tuple[int, str, str]]]]:
    """(buyer, revenue, conversion time, touches) per buyer (a person or a uid, ``by``); a touch = (time, channel, campaign)."""
    who = counter(events, by)
    events = people(events)
    sessions: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    first_buy: dict[str, Event] = {}
    for e in events:
        key = who[e["uid"]]
        if e["name"] == "session":
            sessions[key].append((e["time"], channel_of(e), campaign_of(e)))
        elif e["name"] == conversion and (key not in first_buy or e["time"] < first_buy[key]["time"]):
            first_buy[key] = e
    paths = []
    for key, buy in first_buy.items():
        touches = sorted(t for t in sessions[key] if t[0] <= buy["time"])
        if touches:
            paths.append((key, float(buy["data"]["data"]["revenue"]), buy["time"], touches))
    return paths


def credits(model: str, touches: list[tuple[int, str, str]], conv_time: int, half_life_ms: float) -> list[float]:
    """Each touch's share of one conversion under ``model``; the shares sum to 1."""
    n = len(touches)
    if model == "first":
        return [1.0 if i == 0 else 0.0 for i in range(n)]
    if model == "last":
        return [1.0 if i == n - 1 else 0.0 for i in range(n)]
    if model == "last_non_direct":
        non_direct = [i for i, t in enumerate(touches) if t[1] != "direct"]
        at = non_direct[-1] if non_direct else n - 1
        return [1.0 if i == at else 0.0 for i in range(n)]
    if model == "linear":
        return [1.0 / n] * n
    if model == "time_decay":
        weights = [0.5 ** ((conv_time - t[0]) / half_life_ms) for t in touches]
        return [w / sum(weights) for w in weights]
    if model == "position":
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        return [0.4 if i in (0, n - 1) else 0.2 / (n - 2) for i in range(n)]
    raise ValueError(model)


MODELS = ("first", "last", "last_non_direct", "linear", "time_decay", "position")


def attribution(events: list[Event], half_life_days: float = 7, by: str = "person") -> dict[tuple[str, str], dict[str, float]]:
    """{(channel, campaign): {c_<model>: conversions, r_<model>: revenue}}, buyers counted ``by`` person or cookie."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for _, revenue, conv_time, touches in conversion_paths(events, by=by):
        for model in MODELS:
            for touch, share in zip(touches, credits(model, touches, conv_time, half_life_days * 86_400_000), strict=True):
                row = out[(touch[1], touch[2])]
                row[f"c_{model}"] += share
                row[f"r_{model}"] += share * revenue
    return {k: dict(v) for k, v in out.items()}


def markov_paths(events: list[Event], conversion: str = "purchase") -> list[list[str]]:
    """Every visitor's states: (start), session channels in time order (to the first purchase), the end."""
    events = people(events)
    sessions: dict[str, list[tuple[int, str]]] = defaultdict(list)
    first_buy: dict[str, int] = {}
    for e in events:
        if e["name"] == "session":
            sessions[e["uid"]].append((e["time"], channel_of(e)))
        elif e["name"] == conversion:
            first_buy[e["uid"]] = min(e["time"], first_buy.get(e["uid"], e["time"]))
    paths = []
    for uid, touches in sessions.items():
        bought = first_buy.get(uid)
        chans = [c for t, c in sorted(touches) if bought is None or t <= bought]
        paths.append(["(start)", *chans, "(conversion)" if bought is not None else "(null)"])
    return paths


def markov(events: list[Event]) -> tuple[dict[tuple[str, str], int], dict[str, dict[str, float]]]:
    events = people(events)
    """Transition counts, and per channel P(conversion), removal effect, credited conversions.

    Solved exactly (fractions, Gauss-Jordan) rather than iterated, to check the recipe's iteration.
    """
    from fractions import Fraction

    counts: dict[tuple[str, str], int] = defaultdict(int)
    for path in markov_paths(events):
        for a, b in itertools.pairwise(path):
            counts[(a, b)] += 1
    out_total: dict[str, int] = defaultdict(int)
    for (a, _), n in counts.items():
        out_total[a] += n
    states = sorted(out_total)  # the transient states: (start) and the channels

    def solve(removed: str | None) -> dict[str, Fraction]:
        live = [s for s in states if s != removed]
        index = {s: i for i, s in enumerate(live)}
        # v_s - sum_t P(s,t) v_t = P(s, conversion), over live transient states
        matrix = [[Fraction(0)] * (len(live) + 1) for _ in live]
        for s in live:
            row = matrix[index[s]]
            row[index[s]] += 1
            for (a, b), n in counts.items():
                if a != s:
                    continue
                share = Fraction(n, out_total[s])
                if b == "(conversion)":
                    row[-1] += share
                elif b in index:
                    row[index[b]] -= share
        for col in range(len(live)):
            pivot = next(r for r in range(col, len(live)) if matrix[r][col] != 0)
            matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
            lead = matrix[col][col]
            matrix[col] = [x / lead for x in matrix[col]]
            for r in range(len(live)):
                if r != col and matrix[r][col] != 0:
                    factor = matrix[r][col]
                    matrix[r] = [x - factor * y for x, y in zip(matrix[r], matrix[col], strict=True)]
        return {s: matrix[index[s]][-1] for s in live}

    base = solve(None)
    channels = [s for s in states if s != "(start)"]
    effects = {c: 1 - solve(c)["(start)"] / base["(start)"] for c in channels}
    conversions = sum(n for (a, b), n in counts.items() if b == "(conversion)")
    total_effect = sum(effects.values())
    result = {
        c: {"conversion_probability": float(base[c]), "removal_effect": float(effects[c]),
            "conversions": float(conversions * effects[c] / total_effect)}
        for c in channels
    }
    return dict(counts), result


def activity_index(session_events: list[Event]) -> float:
    """1 + min(duration/300 s, 1) + scroll depth + min(activity events/5, 1), as 07-activity-index.md defines."""
    times = [e["time"] for e in session_events]
    duration_s = (max(times) - min(times)) / 1000
    depth = 0.0
    for e in session_events:
        scroll = e["data"].get("scroll")
        if e["name"] == "scroll" and scroll and scroll["dh"] > 0:
            depth = max(depth, min((scroll["ms"] + scroll["ch"]) / scroll["dh"], 1.0))
    active = sum(1 for e in session_events if e["name"] == "activity")
    return 1 + min(duration_s / 300, 1.0) + depth + min(active / 5, 1.0)


def activity_attribution(events: list[Event]) -> dict[tuple[str, str], dict[str, float]]:
    """{(channel, campaign): {touches, conversions, revenue}} credited by activity index."""
    events = people(events)
    by_session: dict[tuple[str, int], list[Event]] = defaultdict(list)
    for e in events:
        by_session[(e["uid"], e["data"]["sess"]["num"])].append(e)
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: {"touches": 0, "conversions": 0.0, "revenue": 0.0})
    opening: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e["name"] == "session":
            opening[e["uid"]].append(e)
    for uid, revenue, conv_time, _ in conversion_paths(events, by="cookie"):
        sessions = sorted((s for s in opening[uid] if s["time"] <= conv_time), key=lambda e: e["time"])
        indexes = [activity_index(by_session[(uid, s["data"]["sess"]["num"])]) for s in sessions]
        for s, index in zip(sessions, indexes, strict=True):
            row = out[(channel_of(s), campaign_of(s))]
            row["touches"] += 1
            row["conversions"] += index / sum(indexes)
            row["revenue"] += revenue * index / sum(indexes)
    return dict(out)


ACTIVITY_TABLE = ("scroll", "activity")  # the events the store routes to the activity table
FUNNEL = ("visit", "product", "checkout", "purchase")


def funnel_step(e: Event) -> int:
    """Which step (1-4) an event is, or 0: session, product page, checkout page, purchase."""
    from urllib.parse import urlsplit

    path = urlsplit(e["data"]["page"]["url"]).path
    if e["name"] == "session":
        return 1
    if e["name"] == "page" and path.startswith("/product/"):
        return 2
    if e["name"] == "page" and path == "/checkout":
        return 3
    return 4 if e["name"] == "purchase" else 0


def funnels(events: list[Event], by: str = "person") -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Counts reaching each step, by day and by the channel of the attempt's first event.

    An attempt is a person's (or with ``by="cookie"`` a uid's) UTC day; its level is the longest run of steps 1, 2, 3, 4 met in
    time order: from the day's first step-1 event, each next step's first later event. Events
    of the same millisecond count in step order (a landing page at the session's millisecond
    follows the session); the attempt's source is its first event's, the session winning a tie.
    """
    import datetime as dt

    who = counter(events, by)
    events = people(events)
    attempts: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in events:
        if e["name"] not in ACTIVITY_TABLE:
            day = dt.datetime.fromtimestamp(e["time"] / 1000, dt.UTC).date().isoformat()
            attempts[(day, who[e["uid"]])].append(e)
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_channel: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (day, _), evs in attempts.items():
        level = 0
        for e in sorted(evs, key=lambda e: (e["time"], funnel_step(e))):
            if level < 4 and funnel_step(e) == level + 1:
                level += 1
        first = min(evs, key=lambda e: (e["time"], e["name"] != "session"))
        for step in range(level):
            by_day[day][step] += 1
            by_channel[channel_of(first)][step] += 1
    return dict(by_day), dict(by_channel)


def segments(events: list[Event], by: str = "person") -> dict[str, dict[str, Any]]:
    """{uid: {person_id, r, f, m, rfm, segment, revenue}} as 10-segments.md defines them (the events
    table's events): each uid gets the scores of its person (``by="cookie"``: its own)."""
    from urllib.parse import urlsplit

    who = counter(events, by)
    events = people(events)

    rows = [e for e in events if e["name"] not in ACTIVITY_TABLE]
    as_of = max(e["time"] for e in rows)
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"last": 0, "sessions": 0, "revenue": 0.0, "checkouts": 0, "leads": 0})
    for e in rows:
        v = per[who[e["uid"]]]
        v["last"] = max(v["last"], e["time"])
        v["sessions"] += e["name"] == "session"
        v["leads"] += e["name"] == "form_submit"
        v["checkouts"] += e["name"] == "page" and urlsplit(e["data"]["page"]["url"]).path == "/checkout"
        if e["name"] == "purchase":
            v["revenue"] += float(e["data"]["data"]["revenue"])
    scores = {}
    for key, v in per.items():
        days = (as_of - v["last"]) / 86_400_000
        r = 3 if days <= 2 else 2 if days <= 7 else 1
        f = 3 if v["sessions"] >= 4 else 2 if v["sessions"] >= 2 else 1
        m = 3 if v["revenue"] >= 149 else 2 if v["revenue"] > 0 else 1
        if m >= 2 and r >= 2 and f >= 2:
            segment = "champion"
        elif m >= 2:
            segment = "buyer"
        elif v["checkouts"]:
            segment = "cart_abandoner"
        elif v["leads"]:
            segment = "lead"
        elif f >= 2 and r == 1:
            segment = "at_risk"
        elif f == 1 and r >= 2:
            segment = "new"
        else:
            segment = "visitor"
        scores[key] = {"r": r, "f": f, "m": m, "rfm": f"R{r}F{f}M{m}", "segment": segment, "revenue": v["revenue"]}
    return {uid: {"person_id": key, **scores[key]} for uid, key in who.items() if key in scores}


def new_vs_returning(events: list[Event], since: str, by: str = "person") -> dict[str, tuple[int, int]]:
    """{date: (new, returning)} from ``since`` on: who was first seen that day, and who had been
    seen on an earlier day (the events table's events; a person's first day is their first device's)."""
    import datetime as dt

    who = counter(events, by)
    seen: dict[str, set[str]] = defaultdict(set)
    for e in people(events):
        if e["name"] not in ACTIVITY_TABLE:
            seen[dt.datetime.fromtimestamp(e["time"] / 1000, dt.UTC).date().isoformat()].add(who[e["uid"]])
    first: dict[str, str] = {}
    for day in sorted(seen):
        for key in seen[day]:
            first.setdefault(key, day)
    return {day: (sum(first[k] == day for k in keys), sum(first[k] < day for k in keys))
            for day, keys in sorted(seen.items()) if day >= since}


def history(events: list[Event], uid: str, by: str = "person") -> list[Event]:
    """Every event of ``uid``'s person (``by="cookie"``: of the uid), in time order (then id)."""
    who = counter(events, by)
    return sorted((e for e in people(events) if who[e["uid"]] == who[uid]), key=lambda e: (e["time"], int(e["id"])))
