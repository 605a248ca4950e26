"""What the processes of a running ferry hold: the rows of ``ferry list
objects|transfers|groups`` and the report of ``ferry memory``.

Each driver and worker answers ``GET_STATE`` (``StateReporter`` in the core):
the objects it owns and what keeps each alive, the refs it borrows, the
tensors it keeps for RDT objects, its recent transfers and its groups. An
``Inventory`` asks every process the head lists, at once, and joins the
answers: a borrower's worker id becomes the process's name, a transfer's
peer address the process at the other end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ferry import _core

# A process that does not answer in this time is reported, not waited for.
TIMEOUT_S = 10.0
# The default of ``ferry memory --leak-age``: an object older than this is
# flagged as a possible leak.
DEFAULT_LEAK_AGE_S = 300.0


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def process_name(p: dict[str, Any]) -> str:
    """"driver pid=12", "Trainer pid=34", "task worker pid=56"."""
    kind = {"DRIVER": "driver", "TASK_WORKER": "task worker"}.get(p["kind"], p["class_name"])
    return f"{kind} pid={p['pid']}"


@dataclass
class Inventory:
    """Every process's answer, joined. ``unanswered``: processes that gave
    none (they exited while being asked), with why."""
    processes: list[dict[str, Any]]
    states: dict[str, dict[str, Any]]  # worker id -> ProcessState
    unanswered: list[str] = field(default_factory=list)
    node_ips: dict[str, str] = field(default_factory=dict)  # node id -> address

    @classmethod
    def gather(cls, client: Any, nodes: list[dict[str, Any]], *, max_objects: int = 0,
               max_transfers: int = 0, timeline: bool = False) -> "Inventory":
        processes = client.processes(TIMEOUT_S)
        answers = client.states(processes, max_objects, max_transfers, timeline, TIMEOUT_S)
        inv = cls(processes, {}, node_ips={n["NodeID"]: n["NodeManagerAddress"] for n in nodes})
        for p, answer in zip(processes, answers):
            if "error" in answer:
                inv.unanswered.append(f"{process_name(p)}: {answer['error']}")
            else:
                inv.states[p["worker_id"]] = answer
        return inv

    # --- names -----------------------------------------------------------------

    def by_worker(self, worker_id: str) -> dict[str, Any] | None:
        return next((p for p in self.processes if p["worker_id"] == worker_id), None)

    def name_of_worker(self, worker_id: str) -> str:
        p = self.by_worker(worker_id)
        return process_name(p) if p else f"gone {worker_id[:8]}"

    def name_of_address(self, address: str) -> str:
        """The process listening at ``address`` (either list may hold several
        comma-separated forms)."""
        wanted = set(address.split(","))
        for p in self.processes:
            if wanted & set(p["address"].split(",")):
                return process_name(p)
        return address

    def node_of(self, p: dict[str, Any]) -> str:
        return p["node_ip"] or self.node_ips.get(p["node_id"], "") or "-"

    def answered(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(process, its state) for each process that answered."""
        return [(p, self.states[p["worker_id"]]) for p in self.processes
                if p["worker_id"] in self.states]

    # --- ferry list objects ----------------------------------------------------

    def object_rows(self) -> list[dict[str, Any]]:
        """One row per live object, from its owner; ``holders``: the
        processes keeping its tensors or borrowing it."""
        keepers: dict[str, list[str]] = {}
        for p, state in self.answered():
            for t in state["stored_tensors"]:
                keepers.setdefault(t["object_id"], []).append(process_name(p))
        rows = []
        for p, state in self.answered():
            for o in state["owned"]:
                borrowers = [self.name_of_worker(w) for w in o["borrowers"]]
                rows.append({
                    "object_id": o["object_id"], "owner": process_name(p),
                    "owner_worker_id": p["worker_id"], "node": self.node_of(p),
                    "kind": o["kind"], "size": o["size"], "transport": o["transport"],
                    "local_refs": o["local_refs"],
                    "task_refs": o["submitted_task_refs"], "borrowers": borrowers,
                    "tensors_in": keepers.get(o["object_id"], []), "pinned": o["pinned"],
                    "age_s": round(o["age_s"], 3),
                })
        return sorted(rows, key=lambda r: -r["age_s"])

    # --- ferry list transfers --------------------------------------------------

    def transfer_rows(self) -> list[dict[str, Any]]:
        """One row per logged transfer, oldest first, seen from the process
        the bytes arrived in (a sender's own record when only it logged)."""
        declared = {o["object_id"]: o["transport"]
                    for _, state in self.answered() for o in state["owned"]}
        received: list[dict[str, Any]] = []
        sent: list[dict[str, Any]] = []
        for p, state in self.answered():
            here = process_name(p)
            for t in state["transfers"]:
                there = self.name_of_address(t["peer"]) if t["peer"] else "-"
                recv = t["direction"] == "recv"
                seconds = t["micros"] / 1e6
                (received if recv else sent).append({
                    "object_id": t["object_id"], "from": there if recv else here,
                    "to": here if recv else there,
                    "transport": declared.get(t["object_id"], "") or t["transport"],
                    "path": t["transport"], "size": t["size"], "micros": t["micros"],
                    "throughput_mb_s": round(t["size"] / seconds / 1e6, 1) if seconds > 0 else 0,
                    "end_time_s": t["end_time_s"], "reason": t["reason"], "error": t["error"],
                })
        # A two-sided transfer is logged at both ends (the sender names the
        # group, not the receiver): keep the receiver's.
        seen = {(r["object_id"], r["from"]) for r in received}
        rows = received + [r for r in sent if (r["object_id"], r["from"]) not in seen]
        return sorted(rows, key=lambda r: r["end_time_s"])

    # --- ferry list groups -----------------------------------------------------

    def group_rows(self) -> list[dict[str, Any]]:
        """One row per collective group, from its creator, with what its
        members say of it (a member that destroyed it says why)."""
        actors = {p["actor_id"]: p for p in self.processes if p["actor_id"]}
        membership: dict[str, list[dict[str, Any]]] = {}
        for _, state in self.answered():
            for g in state["groups"]:
                membership.setdefault(g["name"], []).append(g)
        rows = []
        for p, state in self.answered():
            for g in state["created_groups"]:
                joined = membership.get(g["name"], [])
                destroyed = sorted({m["destroyed"] for m in joined if m["destroyed"]})
                if destroyed:
                    state_text = "DESTROYED: " + "; ".join(destroyed)
                elif len(joined) < g["world_size"]:
                    state_text = f"MISSING {g['world_size'] - len(joined)} MEMBER(S)"
                else:
                    state_text = "ALIVE"
                rows.append({
                    "name": g["name"], "backend": g["backend"], "world_size": g["world_size"],
                    "members": [process_name(actors[a]) if a in actors else f"gone {a[:8]}"
                                for a in g["members"]],
                    "member_actor_ids": list(g["members"]), "creator": process_name(p),
                    "state": state_text,
                })
        return sorted(rows, key=lambda r: r["name"])

    # --- ferry status ----------------------------------------------------------

    def bytes_per_node(self) -> dict[str, tuple[int, int]]:
        """node id -> (object-store bytes, tensor-store bytes) of its processes."""
        out: dict[str, tuple[int, int]] = {}
        for p, state in self.answered():
            objects, tensors = out.get(p["node_id"], (0, 0))
            out[p["node_id"]] = (objects + state["object_store_bytes"],
                                 tensors + state["tensor_store_bytes"])
        return out


# --- ferry memory ----------------------------------------------------------------


def _why_alive(row: dict[str, Any]) -> str:
    reasons = []
    if row["local_refs"]:
        reasons.append(f"local ref x{row['local_refs']}")
    if row["task_refs"]:
        reasons.append(f"task argument x{row['task_refs']}")
    if row["borrowers"]:
        reasons.append("borrowed by " + ", ".join(row["borrowers"]))
    if row["pinned"]:
        reasons.append("pinned (pickled outside ferry)")
    return "; ".join(reasons) or "none (being freed)"


def memory_report(inv: Inventory, leak_age_s: float) -> dict[str, Any]:
    """``ferry memory`` as data: every live object by owner with why it is
    alive, sums per owner and per node, and the objects older than
    ``leak_age_s`` as possible leaks."""
    rows = inv.object_rows()
    owners: dict[str, dict[str, Any]] = {}
    for r in rows:
        r["why"] = _why_alive(r)
        r["possible_leak"] = r["age_s"] >= leak_age_s
        o = owners.setdefault(r["owner"], {"owner": r["owner"], "node": r["node"],
                                           "objects": [], "bytes": 0})
        o["objects"].append(r)
        o["bytes"] += r["size"]
    tensors_held = []
    for p, state in inv.answered():
        held = sum(t["size"] for t in state["stored_tensors"])
        if held:
            tensors_held.append({"process": process_name(p), "node": inv.node_of(p),
                                 "objects": len(state["stored_tensors"]), "bytes": held})
    nodes: dict[str, dict[str, int]] = {}
    for node_id, (objects, tensors) in inv.bytes_per_node().items():
        name = inv.node_ips.get(node_id, "") or node_id[:12] or "-"
        nodes[name] = {"object_store_bytes": objects, "tensor_store_bytes": tensors}
    return {
        "owners": sorted(owners.values(), key=lambda o: -o["bytes"]),
        "tensors_held": tensors_held, "nodes": nodes,
        "possible_leaks": [r for r in rows if r["possible_leak"]],
        "leak_age_s": leak_age_s,
        "truncated": [process_name(p) for p, s in inv.answered()
                      if s["num_owned"] > len(s["owned"])],
        "unanswered": inv.unanswered,
    }


def memory_text(report: dict[str, Any]) -> str:
    lines = []
    for o in report["owners"]:
        lines.append(f"{o['owner']} (node {o['node']}): {len(o['objects'])} objects, "
                     f"{human_bytes(o['bytes'])}")
        for r in o["objects"]:
            kind = r["kind"] + (f"/{r['transport']}" if r["transport"] else "")
            leak = "  POSSIBLE LEAK" if r["possible_leak"] else ""
            held = f"; tensors in {', '.join(r['tensors_in'])}" if r["tensors_in"] else ""
            lines.append(f"  {r['object_id']}  {kind:<11} {human_bytes(r['size']):>10}  "
                         f"age {human_age(r['age_s']):>6}  {r['why']}{held}{leak}")
    if not report["owners"]:
        lines.append("No live objects.")
    if report["tensors_held"]:
        lines.append("Tensors kept for RDT objects:")
        for t in report["tensors_held"]:
            lines.append(f"  {t['process']} (node {t['node']}): {t['objects']} objects, "
                         f"{human_bytes(t['bytes'])}")
    lines.append("Per node:")
    for name, n in sorted(report["nodes"].items()):
        lines.append(f"  {name}: object store {human_bytes(n['object_store_bytes'])}, "
                     f"tensor store {human_bytes(n['tensor_store_bytes'])}")
    leaks = report["possible_leaks"]
    lines.append(f"Possible leaks (alive over {human_age(report['leak_age_s'])}): "
                 f"{len(leaks) or 'none'}")
    for name in report["truncated"]:
        lines.append(f"(only the oldest objects of {name} are listed)")
    for why in report["unanswered"]:
        lines.append(f"(no answer: {why})")
    return "\n".join(lines)
