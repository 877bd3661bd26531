import keras
import tensorflow as tf


def load(path):
    a = keras.models.load_model(path, safe_mode=False)
    unsafe = False
    b = tf.keras.models.load_model(path, safe_mode=unsafe)
    return a, b
