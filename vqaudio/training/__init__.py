"""Training: the one training loop (`loop`: checkpoints, resume, DDP, AMP, logs; `checkpoint`: the experiment
folder's state) and one task module per model: the VQ-VAE (`vqvae`), the latent prior (`prior`, on codes the codec
extracts) and speaker enrolment (`enroll`: one new voice in a trained model).

May import inference, models, nn, data and the foundations; never evaluate or cli.
"""
