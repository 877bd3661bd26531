†ù

xPlaceholder


wConst

yMatMulxw

outIdentityy’
‘

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
3

__inference_serve_10
mMatMul
rRelum