import torch

a = torch.hub.load("ultralytics/yolov5", "yolov5s")
b = torch.hub.load("pytorch/vision:v0.10.0", "resnet18", pretrained=True)
