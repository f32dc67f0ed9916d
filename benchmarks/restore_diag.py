"""Where the restore eval's dB are lost: per case, the degradation, the goal's targets, the calls, PSNR.

    .venv/bin/python -m benchmarks.restore_diag            # the bundled restore suite (seed 8)
    .venv/bin/python -m benchmarks.restore_diag 3 -v       # a held-out suite from seed 3, with targets

Not part of `make test`; the offline agent only, on 128 px skimage photos (about 1 s a case).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import torch

    from agent.goals import parse_goal
    from evals.baselines import run_system
    from evals.runner import full_reference
    from evals.suites import Generator, build_case, generate, read_suite
    from tools.analysis import measure

    torch.set_grad_enabled(False)
    seed = int(argv[0]) if argv and argv[0].isdigit() else 8
    cases = read_suite("restore").cases if seed == 8 else generate(Generator(kind="restore", seed=seed, count=12))
    rows = []
    for case in cases:
        image, ref = build_case(case)
        before, s_in, s_ref = full_reference(image, ref), measure(image), measure(ref)
        ops = " ".join(f"{d.op}({','.join(f'{k}={v}' for k, v in d.params.items() if k != 'seed')})"
                       for d in case.degrade)
        print(f"{case.id} {case.source} {ops}")
        print(f"  input/clean: p01 {s_in.p01_L:.0f}/{s_ref.p01_L:.0f} p99 {s_in.p99_L:.0f}/{s_ref.p99_L:.0f} "
              f"L* {s_in.mean_L:.0f}/{s_ref.mean_L:.0f} light ({s_in.illuminant_a:+.1f},{s_in.illuminant_b:+.1f})/"
              f"({s_ref.illuminant_a:+.1f},{s_ref.illuminant_b:+.1f}) noise {s_in.noise_sigma:.3f}/{s_ref.noise_sigma:.3f} "
              f"blur {s_in.blur_sigma:.2f}/{s_ref.blur_sigma:.2f} blocks {s_in.blockiness:.2f}/{s_ref.blockiness:.2f}")
        if "-v" in argv:
            for t in parse_goal(case.goal, s_in).targets:
                print(f"  target {t.label}")
        out, seconds = run_system("offline", case, image, ref)
        after = full_reference(out.image.float().clamp(0, 1), ref)
        for step in out.trace:
            print(f"    {step}")
        print(f"  PSNR {before['psnr']:.2f} -> {after['psnr']:.2f} dB, SSIM {before['ssim']:.3f} -> "
              f"{after['ssim']:.3f} ({seconds:.1f} s)")
        rows.append((before["psnr"], after["psnr"], before["ssim"], after["ssim"]))
    n = len(rows)
    print(f"mean over {n}: PSNR {sum(r[0] for r in rows) / n:.2f} -> {sum(r[1] for r in rows) / n:.2f} dB, "
          f"SSIM {sum(r[2] for r in rows) / n:.3f} -> {sum(r[3] for r in rows) / n:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
