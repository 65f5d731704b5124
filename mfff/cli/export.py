"""`mfff-export <run dir | .ckpt | inference file> --heads dft,gfn2 -o model.pt`: a trained model for use without
mfff's training code: a metatomic model (ASE, i-PI, LAMMPS, torch-sim; the default) or an mfff inference file."""

from __future__ import annotations

import argparse

from mfff.cli.errors import user_errors
from mfff.errors import UserError

FORMATS = ("metatomic", "mfff")


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mfff-export", description=__doc__)
    parser.add_argument("model", help="a run dir of mfff-train, a .ckpt file or an mfff inference file")
    parser.add_argument("--heads", help="comma-separated heads (fidelities) to export; default: all of them")
    parser.add_argument("-o", "--output", required=True, help="the file to write")
    parser.add_argument("--format", choices=FORMATS, default="metatomic",
                        help="metatomic: a TorchScript model for metatomic engines (each head is the variant "
                        "energy/<head>); mfff: a small inference file for mfff.load")  # fmt: skip
    parser.add_argument("--dtype", choices=("float32", "float64"), help="default: the model's own")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    with user_errors("mfff-export"):
        from mfff.inference.files import load, save

        model = load(args.model, dtype=args.dtype)
        heads = args.heads.split(",") if args.heads else model.heads
        if args.format == "mfff":
            path = save(model.keep(heads), args.output)
        else:
            try:
                from mfff.inference.metatomic import export
            except ImportError as err:
                raise UserError(f"--format metatomic needs metatomic-torch ({err.name} is missing): "
                                "pip install 'mfff[export]'") from None  # fmt: skip
            path = export(model, heads, args.output, args.dtype)
        print(f"mfff-export: wrote {path} ({args.format}; heads {', '.join(heads)})")


if __name__ == "__main__":
    main()
