"""What a run shows: live plots (Visdom, TensorBoard), curves.png and other pictures, terminal tables,
and the local Visdom server."""
