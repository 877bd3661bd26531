import torch

a = torch.hub.load("ultralytics/yolov5:0123456789abcdef0123456789abcdef01234567", "yolov5s")
b = torch.hub.load("./vendor/vision", "resnet18", source="local")
