"""Do the codes carry the content? Decoder loss on held-out windows with the true codes vs another utterance's.

No posterior collapse means the decoder depends on the codes: its loss on dev windows given their own codes must
be far below its loss given the codes of a different window (rolled within the batch; same speakers, so only the
content differs). Wavenet kind: negative log-likelihood in bits per sample; vocoder kind: the feature loss
(`VocoderDecoder.loss`, normalised L1 + voicing BCE). Also prints the codebook usage of the dev windows (codes
used, perplexity), on the `dev` split (never trained on).

    python benchmarks/codes_carry_content.py DATA_DIR MODEL.pt [--batches 8] [--batch-size 8] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from vqaudio.audio import mu_law_encode
from vqaudio.data.dataset import SegmentDataset, resolve_data_dir
from vqaudio.data.world import WorldSettings
from vqaudio.evaluate.metrics import codebook_usage
from vqaudio.models.io import load_model
from vqaudio.models.vocoder import feature_loss


def decoder_loss(model, codes: torch.Tensor, speaker: torch.Tensor, batch) -> float:
    """Wavenet kind: mean decoder NLL in bits/sample of the windows [B, T] given codes [B, N] and speaker [B];
    vocoder kind: the feature loss of the windows' WORLD features."""
    if model.kind == "vocoder":
        parts = model.decoder.loss(model.decoder(model.codes_to_latent(codes), speaker), batch.features)[1]
        return feature_loss(parts).item()  # unweighted: comparable across spectral_weights
    targets = mu_law_encode(batch.wav, model.decoder.classes)
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
    world = WorldSettings.from_config(loaded.config) if model.kind == "vocoder" else None
    dev = SegmentDataset.from_data_dir(resolve_data_dir(args.data_dir).dev, loaded.speakers, segment,
                                       loaded.sample_rate, seed=1234, show_progress=False,
                                       level_db=loaded.config.input_level_db, world=world)
    true_loss, foreign_loss, all_codes = [], [], []
    with torch.inference_mode():
        for batch in dev.fixed_batches(args.batches, args.batch_size):
            codes = model.encode(batch.wav)
            all_codes.append(codes.flatten())
            true_loss.append(decoder_loss(model, codes, batch.speaker, batch))
            foreign_loss.append(decoder_loss(model, codes.roll(1, dims=0), batch.speaker, batch))
    usage = codebook_usage(torch.cat(all_codes).numpy(), loaded.config.vq.codebook_size)
    n = args.batches * args.batch_size
    unit = "bits/sample (NLL)" if model.kind == "wavenet" else "(feature loss)"
    print(f"dev windows: {n} x {args.seconds} s; model {args.model} ({model.kind} decoder)")
    print(f"decoder loss, true codes:            {sum(true_loss) / len(true_loss):.3f} {unit}")
    print(f"decoder loss, another window's codes: {sum(foreign_loss) / len(foreign_loss):.3f} {unit}")
    print(f"codes used on these windows: {usage.used} of {loaded.config.vq.codebook_size}, "
          f"perplexity {usage.perplexity:.1f}")


if __name__ == "__main__":
    main()
