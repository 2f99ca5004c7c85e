"""The networks trainees train: a nanoGPT-style GPT (``gpt``) and a CIFAR-style ResNet-18
for small images (``resnet``)."""
