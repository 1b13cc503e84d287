# How the training stages run. Change ONE line to move from this machine to several GPUs or a cluster.
# run.sh calls "$train_cmd train ..." and "$train_cmd train-prior ...".

# 1) Locally, one process (CPU, or one GPU if present) -- the default.
train_cmd="vqaudio"

# 2) Several GPUs on this machine: PyTorch DDP under torchrun (the training command detects it).
# train_cmd="torchrun --standalone --nproc_per_node=4 -m vqaudio"

# 3) A Slurm cluster: one torchrun per node, rendezvous on the first node.
# train_cmd="srun --nodes=2 --ntasks-per-node=1 --gres=gpu:4 --cpus-per-task=32 \
#   torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=\$(hostname):29500 -m vqaudio"

# Everything else (data prep, probe, conversion, evaluation) runs locally.
cmd="vqaudio"
