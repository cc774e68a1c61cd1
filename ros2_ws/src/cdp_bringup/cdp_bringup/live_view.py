"""The running stack as Rerun sees it: plain logging calls, no ROS (``live_view_node`` feeds them).

Why Rerun: its web viewer ships inside the ``rerun-sdk`` wheel and is served from this machine
(``serve``), so a robot PC without internet shows the stack in any browser on its network;
Foxglove's viewer is a hosted app (or a desktop install) that these machines cannot reach.
The project's MCAP recordings stay the record of an episode; this is the live view.

Entities (all in the robot base frame ``fr3_link0``, metres, one ``time`` timeline in ROS seconds):

    world/tcp            the measured TCP (FR3 model FK of /joint_states), with a trail
    world/commanded      the TCP of the safety filter's command
    world/chunk          the executed draw of the last policy chunk as a TCP path
    world/draws          every draw of that chunk as TCP paths (their spread is the dispersion)
    world/object         the perceived object pose (/perception/object_pose)
    camera/image         the colour image
    joints/measured/qN, joints/commanded/qN   joint positions (rad)
    policy/dispersion    mean std across the draws (rad)
    safety/interventions the filter's interventions (text log)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from cdp_core.robot.kinematics import tcp_position

TRAIL = 60  # measured TCP positions kept for the trail (3 s at the node's 20 Hz joint rate)
#: The trail is re-sent whole, so it goes every this many joint states: a software-rendered
#: browser viewer on a loaded robot PC otherwise falls behind the stream.
TRAIL_EVERY = 4


def blueprint() -> Any:
    """The default layout: the 3D scene large, the camera, the joints, the dispersion, the interventions."""
    import rerun.blueprint as rrb

    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Vertical(
                rrb.Spatial3DView(name="scene (fr3_link0)", origin="world"),
                rrb.TextLogView(name="safety interventions", origin="safety"),
                row_shares=[3, 1],
            ),
            rrb.Vertical(
                rrb.Spatial2DView(name="camera", origin="camera"),
                rrb.TimeSeriesView(name="measured joints (rad)", origin="joints/measured"),
                rrb.TimeSeriesView(name="commanded joints (rad)", origin="joints/commanded"),
                rrb.TimeSeriesView(name="chunk dispersion (rad)", origin="policy"),
            ),
            column_shares=[3, 2],
        ),
        # A live view shows now: follow the newest data (the default plays from the first message
        # at 1x, so a viewer that joins late or renders slowly lags ever further behind).
        rrb.TimePanel(timeline="time", play_state="following", state="collapsed"),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
    )


class LiveView:
    """Logs what the stack does to one Rerun recording stream (``rr.RecordingStream``)."""

    def __init__(self, rec: Any):
        import rerun as rr

        self.rr, self.rec = rr, rec
        self._trail: deque[np.ndarray] = deque(maxlen=TRAIL)
        self.counts: dict[str, int] = {}
        rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)

    def _at(self, t: float, what: str) -> None:
        self.rec.set_time("time", timestamp=t)
        self.counts[what] = self.counts.get(what, 0) + 1

    def joint_state(self, t: float, q: np.ndarray) -> None:
        rr = self.rr
        self._at(t, "joint_state")
        p = tcp_position(np.asarray(q, dtype=np.float64))
        self._trail.append(p)
        self.rec.log("world/tcp", rr.Points3D([p], radii=0.004, colors=[[230, 230, 230]]))
        if self.counts["joint_state"] % TRAIL_EVERY == 1:
            self.rec.log(
                "world/tcp/trail", rr.LineStrips3D([np.array(self._trail)], colors=[[150, 150, 150]], radii=0.002)
            )
        for i, v in enumerate(q):
            self.rec.log(f"joints/measured/q{i + 1}", rr.Scalars(float(v)))

    def command(self, t: float, q: np.ndarray) -> None:
        rr = self.rr
        self._at(t, "command")
        self.rec.log(
            "world/commanded", rr.Points3D([tcp_position(np.asarray(q, float))], radii=0.003, colors=[[60, 140, 255]])
        )
        for i, v in enumerate(q):
            self.rec.log(f"joints/commanded/q{i + 1}", rr.Scalars(float(v)))

    def chunk(self, t: float, positions: np.ndarray) -> None:
        if not len(positions):
            return
        self._at(t, "chunk")
        path = np.array([tcp_position(q) for q in np.asarray(positions, float)])
        self.rec.log("world/chunk", self.rr.LineStrips3D([path], colors=[[255, 160, 0]], radii=0.003))

    def draws(self, t: float, draws: np.ndarray) -> None:
        """``draws`` [K, n, 7]: the chunk's samples; drawn as K TCP paths, their spread logged."""
        draws = np.asarray(draws, dtype=np.float64)
        if draws.ndim != 3 or draws.shape[-1] != 7 or not len(draws):
            return
        self._at(t, "draws")
        paths = [np.array([tcp_position(q) for q in d]) for d in draws]
        self.rec.log("world/draws", self.rr.LineStrips3D(paths, colors=[[255, 220, 120, 160]], radii=0.0015))
        if len(draws) > 1:
            self.rec.log("policy/dispersion", self.rr.Scalars(float(draws.std(axis=0).mean())))

    def intervention(self, t: float, text: str) -> None:
        self._at(t, "intervention")
        self.rec.log("safety/interventions", self.rr.TextLog(text, level="WARN"))

    def image(self, t: float, rgb: np.ndarray) -> None:
        self._at(t, "image")
        self.rec.log("camera/image", self.rr.Image(np.asarray(rgb)))

    def object_pose(self, t: float, position: np.ndarray, quat_xyzw: np.ndarray) -> None:
        rr = self.rr
        self._at(t, "object_pose")
        self.rec.log(
            "world/object",
            rr.Transform3D(
                translation=np.asarray(position, float), quaternion=rr.Quaternion(xyzw=np.asarray(quat_xyzw, float))
            ),
        )
        self.rec.log("world/object/frame", rr.Boxes3D(half_sizes=[[0.03, 0.03, 0.01]], colors=[[80, 220, 120]]))
