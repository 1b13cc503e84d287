"""Do the codes carry the content? Decoder NLL on held-out windows with the true codes vs another utterance's.

No posterior collapse means the WaveNet decoder depends on the codes: its negative log-likelihood of dev
windows given their own codes must be far below its NLL given the codes of a different window (rolled
within the batch; same speakers, so only the content differs). Also prints the codebook usage of the dev
windows (codes used, perplexity). Figures are bits per sample, on the `dev` split (never trained on).

    python benchmarks/codes_carry_content.py DATA_DIR MODEL.pt [--batches 8] [--batch-size 8] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from vqaudio.audio import mu_law_encode
from vqaudio.data.dataset import SegmentDataset, resolve_data_dir
from vqaudio.evaluate.metrics import codebook_usage
from vqaudio.models.io import load_model


def nll_bits(model, codes: torch.Tensor, speaker: torch.Tensor, wav: torch.Tensor) -> float:
    """Mean decoder NLL in bits/sample of wav [B, T] given codes [B, N] and speaker [B]."""
    targets = mu_law_encode(wav, model.decoder.classes)
    logits = model.decoder_logits(codes, speaker, targets)
    return F.cross_entropy(logits, targets).item() / math.log(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("model")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    model = loaded.model.eval()
    segment = int(args.seconds * loaded.sample_rate) // loaded.hop_length * loaded.hop_length
    dev = SegmentDataset.from_data_dir(resolve_data_dir(args.data_dir).dev, loaded.speakers, segment,
                                       loaded.sample_rate, seed=1234, show_progress=False)
    true_bits, foreign_bits, all_codes = [], [], []
    with torch.inference_mode():
        for batch in dev.fixed_batches(args.batches, args.batch_size):
            codes = model.encode(batch.wav)
            all_codes.append(codes.flatten())
            true_bits.append(nll_bits(model, codes, batch.speaker, batch.wav))
            foreign_bits.append(nll_bits(model, codes.roll(1, dims=0), batch.speaker, batch.wav))
    usage = codebook_usage(torch.cat(all_codes).numpy(), loaded.config.vq.codebook_size)
    n = args.batches * args.batch_size
    print(f"dev windows: {n} x {args.seconds} s; model {args.model}")
    print(f"decoder NLL, true codes:            {sum(true_bits) / len(true_bits):.3f} bits/sample")
    print(f"decoder NLL, another window's codes: {sum(foreign_bits) / len(foreign_bits):.3f} bits/sample")
    print(f"codes used on these windows: {usage.used} of {loaded.config.vq.codebook_size}, "
          f"perplexity {usage.perplexity:.1f}")


if __name__ == "__main__":
    main()
