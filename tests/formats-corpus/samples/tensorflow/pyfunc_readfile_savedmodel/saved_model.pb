ÊÇ

xPlaceholder
"
callStatefulPartitionedCallxŽ
Ô

__inference__traced_save_42%

StringJoin
StringJoinfile_prefix.
ShardedFilenameShardedFilename
StringJoin!
SaveV2SaveV2ShardedFilename9
MergeV2CheckpointsMergeV2CheckpointsShardedFilename
G
 
__inference__traced_restore_57#
	RestoreV2	RestoreV2file_prefix
l

__inference_serve_11
pathConst
secretReadFilepath)
cbEagerPyFuncx*
token
pyfunc_0