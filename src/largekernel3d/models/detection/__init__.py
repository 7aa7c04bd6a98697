"""LiDAR 3D object detection: voxel feature encoders, sparse 3D backbones (VoxelBackBone8x,
VoxelResBackBone8x, the LargeKernel3D backbone), the BEV neck and the CenterPoint head."""
