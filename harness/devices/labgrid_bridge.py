"""The harness's line to a labgrid coordinator: one small process run by the Python that has
labgrid installed (it may be another virtualenv than the harness's: labgrid's
`pyserial-labgrid` and the harness's `pyserial` both install the module `serial`).

Stdlib + labgrid only; it never imports the harness. One JSON request per stdin line, one
JSON answer per stdout line:

    {"op": "hello"}                            -> {"user": "host/user", "labgrid": "26.0.1"}
    {"op": "places"}                           -> [{name, tags, aliases, comment, acquired, reservation}]
    {"op": "reserve", "filters": {..}, "prio": 0.0} -> {token, state, owner, prio, filters, place}
    {"op": "poll", "token": T}                 -> the same reservation, now
    {"op": "reservations"}                     -> every reservation
    {"op": "cancel", "token": T}               -> null (a token that no longer exists is no error)
    {"op": "acquire", "place": P}              -> null
    {"op": "release", "place": P, "from": U}   -> null (only if `from` still holds it, when given)
    {"op": "resources", "place": P}            -> [{name, cls, params}] of the acquired place
    {"op": "power", "place": P, "action": "cycle"|"on"|"off", "delay": S} -> null

Answers: {"ok": true, "result": ...} or {"ok": false, "error": "..."}. Passwords that an
exporter publishes for a NetworkService are never sent back.

On end of input (the harness exited, or was killed) it releases what it acquired and cancels
its reservations. It ignores SIGINT: on Ctrl-C the harness itself releases through it.
"""
import argparse
import asyncio
import json
import os
import signal
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # labgrid's client prints progress to stdout; stdout is this protocol's channel
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr

    from labgrid.remote.client import Error, start_session
    from labgrid.remote.common import Reservation
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

    try:
        session = start_session(args.coordinator)
    except Exception as exc:  # refused, unreachable, wrong version
        channel.write(json.dumps({"ok": False, "error": f"cannot reach the labgrid coordinator at "
                                                         f"{args.coordinator}: {exc}"}) + "\n")
        return 2
    user = f"{session.gethostname()}/{session.getuser()}"
    mine = {"places": set(), "tokens": set()}

    def reservation(res):
        d = res.asdict()
        d["token"] = res.token
        allocated = d.get("allocations", {}).get("main") or []
        d["place"] = allocated[0] if allocated else None
        return d

    def place_dict(place):
        return {"name": place.name, "tags": dict(place.tags), "aliases": sorted(place.aliases),
                "comment": place.comment, "acquired": place.acquired, "reservation": place.reservation,
                "matches": [str(m) for m in place.matches]}

    def namespace(**kw):
        base = dict(place=None, kick=False, allow_unmatched=False, name=None, delay=None)
        base.update(kw)
        return argparse.Namespace(**base)

    async def rpc(call, request):
        import grpc

        try:
            return await call(request)
        except grpc.aio.AioRpcError as exc:
            raise Error(exc.details()) from None

    async def handle(req):
        op = req.get("op")
        await session.sync_with_coordinator()
        if op == "hello":
            from labgrid import __version__ as version

            return {"user": user, "labgrid": version}
        if op == "places":
            return [place_dict(p) for p in session.places.values()]
        if op == "reserve":
            filters = {"main": pb2.Reservation.Filter(filter={str(k): str(v) for k, v in req["filters"].items()})}
            answer = await rpc(session.stub.CreateReservation,
                               pb2.CreateReservationRequest(filters=filters, prio=float(req.get("prio", 0.0))))
            res = Reservation.from_pb2(answer.reservation)
            mine["tokens"].add(res.token)
            return reservation(res)
        if op == "poll":
            answer = await rpc(session.stub.PollReservation, pb2.PollReservationRequest(token=req["token"]))
            return reservation(Reservation.from_pb2(answer.reservation))
        if op == "reservations":
            answer = await rpc(session.stub.GetReservations, pb2.GetReservationsRequest())
            return [reservation(Reservation.from_pb2(r)) for r in answer.reservations]
        if op == "cancel":
            mine["tokens"].discard(req["token"])
            try:
                await rpc(session.stub.CancelReservation, pb2.CancelReservationRequest(token=req["token"]))
            except Error as exc:
                if "does not exist" not in str(exc):  # expired or already cancelled: nothing to undo
                    raise
            return None
        if op == "acquire":
            session.args = namespace(place=req["place"])
            await session.acquire()
            mine["places"].add(req["place"])
            return None
        if op == "release":
            place = req["place"]
            if req.get("from"):
                await rpc(session.stub.ReleasePlace, pb2.ReleasePlaceRequest(placename=place, fromuser=req["from"]))
            else:
                session.args = namespace(place=place)
                await session.release()
            mine["places"].discard(place)
            return None
        if op == "resources":
            place = session.get_acquired_place(req["place"])
            out = []
            for (name, cls), entry in sorted(session.get_target_resources(place).items()):
                params = {k: v for k, v in entry.args.items() if k != "password"}
                out.append({"name": name, "cls": cls, "params": params,
                            "has_password": bool(entry.args.get("password")), "avail": entry.avail})
            return out
        if op == "power":
            session.args = namespace(place=req["place"], action=req.get("action", "cycle"),
                                     delay=req.get("delay"))
            session.power()
            return None
        raise Error(f"unknown request {op!r}")

    async def serve():
        loop = asyncio.get_running_loop()
        while True:
            # read in a thread so the client's message pump keeps running between requests
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            try:
                req = json.loads(line)
                answer = {"ok": True, "result": await handle(req)}
            except Exception as exc:  # labgrid's UserError/ServerError, a bad request
                answer = {"ok": False, "error": str(exc) or type(exc).__name__}
            channel.write(json.dumps(answer) + "\n")
        await cleanup()

    async def cleanup():
        for token in list(mine["tokens"]):
            try:
                await rpc(session.stub.CancelReservation, pb2.CancelReservationRequest(token=token))
            except Exception:
                pass
        for place in list(mine["places"]):
            try:
                await rpc(session.stub.ReleasePlace, pb2.ReleasePlaceRequest(placename=place, fromuser=user))
            except Exception:
                pass

    session.loop.run_until_complete(serve())
    try:
        session.loop.run_until_complete(session.stop())
        session.loop.run_until_complete(session.close())
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
