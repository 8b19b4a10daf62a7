"""The ``cnnx`` command (also ``python -m cnnx``)."""
import argparse
import json
import sys


def _cmd_info(args):
    import cnnx

    info = cnnx.info()
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>13}: {v}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="cnnx", description="cnnx: convolutional networks on the CPU")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    pi = sub.add_parser("info", help="version, SIMD level and threads of this build")
    pi.add_argument("--json", action="store_true", help="print one JSON object")
    pi.set_defaults(func=_cmd_info)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
