import keras
import tensorflow as tf


def load(path):
    a = keras.models.load_model(path)
    b = tf.keras.models.load_model(path, safe_mode=True)
    return a, b
