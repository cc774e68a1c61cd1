"""A franky-sim (MuJoCo FR3, libfranka protocol) server in its own process, for the tests.

Run as ``python sim_server.py HOSTNAME [q1 ... q7]``; prints ``READY`` once it accepts
connections. A libfranka client in the same process as the server deadlocks, hence a process.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    import franky_sim
    from franky_sim.mujoco_simulator import MujocoSimulator

    hostname = sys.argv[1]
    q0 = tuple(float(v) for v in sys.argv[2:9]) if len(sys.argv) >= 9 else (0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785)
    sim = MujocoSimulator()
    sim.add_robot(initial_q=q0)
    with sim:
        with franky_sim.SimulationServer(sim, hostname_candidates=[hostname]) as server:
            # SIGTERM from the fixture: leave the loop so the sockets close cleanly.
            signal.signal(signal.SIGTERM, lambda *_: setattr(server, "running", False))
            print("READY", flush=True)
            try:
                server.run_forever()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()
