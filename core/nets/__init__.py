"""Networks: the small ResNet/CNN classifiers and the class-conditional UNet (diffusers ``UNet2DModel``) of CFG."""
