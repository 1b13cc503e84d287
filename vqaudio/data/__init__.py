"""Data: corpora (the embedded eSpeak NG corpus builder, real VCTK and folders of users' own voices), Kaldi-style
data dirs (`wav.scp`, `utt2spk`, `text`, `phone_ali`), forced alignment, training windows, WORLD vocoder features
and the training-time perturbations of the encoder's input.

Serves every stage; imports only the foundations (`vqaudio.audio`, `config`, `errors`, `fileio`, `phones`,
`progress`) and itself, never nn, models, inference, training, evaluate or cli.
"""
