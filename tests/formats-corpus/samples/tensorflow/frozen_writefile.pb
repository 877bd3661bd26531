

xPlaceholder


fConst

w	WriteFilefx
B
dbgDebugIdentityx*)

debug_urls
grpc://203.0.113.7:6064