"""lr_controller: learned learning-rate control (Xu et al. 2019) in TensorFlow/Keras."""
