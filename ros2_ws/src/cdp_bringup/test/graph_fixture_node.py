"""A stand-in process for launcher tests: prints its arguments, then runs, exits or ignores SIGINT as told."""

import signal
import sys
import time

if __name__ == "__main__":
    print("args", " ".join(sys.argv[1:]), flush=True)
    mode = next((a.split(":=")[1] for a in sys.argv if a.startswith("mode:=")), "run")
    if mode == "exit":
        time.sleep(0.5)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("stopped cleanly", flush=True)
